// Rounds that do not stall, over real sockets on loopback with hand-built participants (peer.ts):
// a round draws from the participants who said they are ready, over-selects, and closes at its
// quorum; a participant that only joined, sleeps mid-round or never comes back holds no round;
// one that joins late is selected later; an aborted round does not count toward `rounds`; the
// audit re-derives each selection from the ready set the round-open record names.

import test from 'ava';
import {
  ZERO_HASH,
  signRoundRecord,
  verifyRoundLog,
  type RoundOpenBody,
  type RoundRecord,
} from '@fedit/shared';
import { openFederationDir } from '../src/index.ts';
import {
  assertStoreIntact,
  logRecords,
  snapshotBlobs,
  startTestFederation,
  type TestFederation,
} from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

/** The round-open record of round `round`. */
async function openRecord(fed: TestFederation, round: number): Promise<RoundOpenBody> {
  const record = (await logRecords(fed.root)).find((r) => r.kind === 'round-open' && r.round === round);
  if (record?.kind !== 'round-open') throw new Error(`no round-open record for round ${round}`);
  return record.body;
}

async function joined(fed: TestFederation, name: string, ready = true): Promise<Peer> {
  return (await Peer.connect(fed.target())).join(fed.inviteToken(), name, { ready });
}

const sorted = (ids: string[]) => [...ids].sort();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a participant that only joined is never selected, and no round waits for it', async (t) => {
  // The deadline is far beyond the test's wait limit: a round that waited for it would fail.
  const fed = await startTestFederation(t, {
    rounds: 1,
    participantsPerRound: { fraction: 1, minimum: 1 },
    roundDeadlineSeconds: 600,
  });
  const before = snapshotBlobs(fed.root);
  const onlyJoined = await joined(fed, 'only joined', false);
  t.teardown(() => onlyJoined.close());
  await pause(300);
  t.is(fed.events.filter((e) => e.type === 'round-open').length, 0, 'joining alone opens no round');

  const trainer = await joined(fed, 'trainer');
  t.teardown(() => trainer.close());
  const open = await trainer.roundOpen(1);
  t.deepEqual(open.selected, [trainer.id]);
  t.like(await trainer.upload(await trainer.update(open)), { ok: true });
  t.like(await fed.waitFor('round-closed', (e) => e.round === 1), { updates: 1, dropped: [] });

  const body = await openRecord(fed, 1);
  t.deepEqual(body.selection.ready, [trainer.id], 'the record names the ready set it drew from');
  t.is(body.selection.overSelection, '1.3');
  t.is(body.quorum, 1);
  t.is(body.trainingRound, 1);
  await assertStoreIntact(t, fed.root, before);
});

test('a participant that sleeps mid-round does not hold it once over-selection reached the quorum; its late update is refused', async (t) => {
  // The round opens once 3 are ready (participants become ready one by one) and closes at 2.
  const fed = await startTestFederation(t, {
    rounds: 2,
    participantsPerRound: { fraction: 1, minimum: 3, quorum: 2 },
    minUpdates: 1,
    roundDeadlineSeconds: 600,
  });
  const before = snapshotBlobs(fed.root);
  const peers = [await joined(fed, 'a'), await joined(fed, 'b'), await joined(fed, 'c')];
  t.teardown(() => peers.forEach((p) => p.close()));
  const open = await peers[0].roundOpen(1);
  t.deepEqual(open.selected, sorted(peers.map((p) => p.id)), 'all three are selected (over-selection)');
  t.is((await openRecord(fed, 1)).quorum, 2);

  const [sleeper, ...awake] = peers;
  const lateUpdate = await sleeper.update(open);
  sleeper.close(); // the laptop sleeps
  for (const p of awake) t.like(await p.upload(await p.update(open)), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 2);
  t.deepEqual(closed.dropped, [
    {
      participant: sleeper.id,
      reason: "the round closed at its quorum of 2 updates before this participant's counted",
    },
  ]);

  // It wakes up and sends what it trained: refused by name, not counted.
  const back = await sleeper.reconnect(fed.target(), { ready: false });
  peers.push(back);
  const refused = await back.upload(lateUpdate);
  t.like(refused, { ok: false, error: { code: 'ROUND_QUORUM_REACHED' } });

  // Awake again, it is ready and selected for round 2, which again closes at its quorum.
  await back.ready(true);
  const open2 = await awake[0].roundOpen(2);
  t.deepEqual(open2.selected, sorted(peers.slice(0, 3).map((p) => p.id)));
  for (const p of awake) t.like(await p.upload(await p.update(open2)), { ok: true });
  t.like(await fed.waitFor('round-closed', (e) => e.round === 2), { updates: 2 });
  t.deepEqual(await fed.coordinator.finished, { completed: true });
  await assertStoreIntact(t, fed.root, before, { orphans: 0 });
});

test('one that never comes back holds no later round, and one that joins late is selected later', async (t) => {
  const fed = await startTestFederation(t, {
    rounds: 3,
    participantsPerRound: { fraction: 1, minimum: 2 },
    minUpdates: 1,
    roundDeadlineSeconds: 6,
  });
  const before = snapshotBlobs(fed.root);
  const stays = await joined(fed, 'stays');
  const vanishes = await joined(fed, 'vanishes');
  t.teardown(() => [stays, vanishes].forEach((p) => p.close()));
  const open1 = await stays.roundOpen(1);
  t.deepEqual(open1.selected, sorted([stays.id, vanishes.id]));
  vanishes.close(); // gone for good, mid-round
  t.like(await stays.upload(await stays.update(open1)), { ok: true });
  // Round 1 waits for its (short) deadline: the vanished one might have come back to resume.
  t.like(await fed.waitFor('round-closed', (e) => e.round === 1), {
    updates: 1,
    dropped: [{ participant: vanishes.id, reason: 'disconnected, no update before the deadline' }],
  });

  const late = await joined(fed, 'late');
  t.teardown(() => late.close());
  for (const round of [2, 3]) {
    const open = await stays.roundOpen(round);
    t.deepEqual(open.selected, sorted([stays.id, late.id]), `round ${round}: not the vanished one`);
    for (const p of [stays, late]) t.like(await p.upload(await p.update(open)), { ok: true });
    await fed.waitFor('round-closed', (e) => e.round === round);
    t.true(Date.now() < open.deadline, `round ${round} closed before its deadline, not at it`);
  }
  t.deepEqual(await fed.coordinator.finished, { completed: true });
  await assertStoreIntact(t, fed.root, before);
});

test('after three aborted rounds in a row, no round opens until a participant newly says it is ready', async (t) => {
  const fed = await startTestFederation(t, {
    rounds: 1,
    participantsPerRound: { fraction: 1, minimum: 1 },
    minUpdates: 1,
    roundDeadlineSeconds: 600,
  });
  // Ready, but every update it sends is refused: each round ends at once, aborted.
  const broken = await joined(fed, 'broken');
  t.teardown(() => broken.close());
  for (const round of [1, 2, 3]) {
    const open = await broken.roundOpen(round);
    const bad = await broken.update(open, { values: (_, g) => g.map(() => NaN) });
    t.like(await broken.upload(bad), { ok: false, error: { code: 'UPDATE_NOT_FINITE' } });
    await fed.waitFor('round-aborted', (e) => e.round === round);
  }
  t.like(await fed.waitFor('paused'), { aborts: 3 });
  await pause(1200);
  t.is(fed.events.filter((e) => e.type === 'round-open').length, 3, 'no fourth round while paused');

  // Fixed, it says so: new readiness, and a round opens again.
  await broken.ready(false, 'paused');
  await broken.ready(true);
  const open = await broken.roundOpen(4);
  t.is((await openRecord(fed, 4)).trainingRound, 1, 'aborted rounds do not advance the training round');
  t.like(await broken.upload(await broken.update(open)), { ok: true });
  t.deepEqual(await fed.coordinator.finished, { completed: true });
  t.like(await broken.federationFinished(), { rounds: 1, round: 4, updates: 1 });
});

test('the audit re-derives the selection from the recorded ready set and rejects a tampered one', async (t) => {
  const fed = await startTestFederation(t, {
    rounds: 1,
    participantsPerRound: { fraction: 1, minimum: 1 },
  });
  const onlyJoined = await joined(fed, 'only joined', false);
  const trainer = await joined(fed, 'trainer');
  t.teardown(() => [onlyJoined, trainer].forEach((p) => p.close()));
  const open = await trainer.roundOpen(1);
  t.like(await trainer.upload(await trainer.update(open)), { ok: true });
  await fed.coordinator.finished;

  const { identity } = openFederationDir(fed.root);
  const options = { coordinatorPublicKey: identity.sign.publicKey };
  const records = await logRecords(fed.root);
  t.true(verifyRoundLog(records, options).ok, 'the honest log verifies');

  // The coordinator claims the participant that only joined was ready too (and re-signs the log).
  const claimed = tamperSelection(records, identity.sign.secretKey, (s) => {
    s.ready = sorted([onlyJoined.id, trainer.id]);
  });
  const report = verifyRoundLog(claimed, options);
  t.is(report.firstFailure?.code, 'SELECTION_MISMATCH');
  t.regex(report.firstFailure!.message, /from the recorded ready participants/);

  // Or names a ready participant who is not enrolled at all.
  const stranger = tamperSelection(records, identity.sign.secretKey, (s) => {
    s.ready = sorted([trainer.id, 'f'.repeat(32)]);
  });
  const strangerReport = verifyRoundLog(stranger, options);
  t.is(strangerReport.firstFailure?.code, 'SELECTION_MISMATCH');
  t.regex(strangerReport.firstFailure!.message, /not an eligible participant/);

  // A quorum or a training round other than the config and the log give.
  const quorum = tamperOpen(records, identity.sign.secretKey, (body) => void (body.quorum = 2));
  t.regex(verifyRoundLog(quorum, options).firstFailure?.message ?? '', /quorum 2 exceeds the 1 selected/);
  const schedule = tamperOpen(records, identity.sign.secretKey, (body) => void (body.trainingRound = 2));
  t.like(verifyRoundLog(schedule, options).firstFailure, { code: 'ROUND_ORDER' });
});

/** The log with round 1's selection (in its open and close records) edited, chained and signed again. */
function tamperSelection(
  records: RoundRecord[],
  secretKey: Uint8Array,
  edit: (selection: RoundOpenBody['selection']) => void,
): RoundRecord[] {
  return resigned(records, secretKey, (r) => {
    if ((r.kind === 'round-open' || r.kind === 'round-closed') && r.round === 1) {
      edit(r.body.selection);
      return true;
    }
    return false;
  });
}

/** The log with round 1's open record edited, chained and signed again. */
function tamperOpen(
  records: RoundRecord[],
  secretKey: Uint8Array,
  edit: (body: RoundOpenBody) => void,
): RoundRecord[] {
  return resigned(records, secretKey, (r) => {
    if (r.kind !== 'round-open' || r.round !== 1) return false;
    edit(r.body);
    return true;
  });
}

/** A copy of `records` where `edit` changed some (returning true), re-chained and re-signed from the first. */
function resigned(
  records: RoundRecord[],
  secretKey: Uint8Array,
  edit: (record: RoundRecord) => boolean,
): RoundRecord[] {
  const out = records.map((r) => structuredClone(r));
  let from = out.length;
  out.forEach((r, i) => {
    if (edit(r)) from = Math.min(from, i);
  });
  for (let i = from; i < out.length; i++) {
    const { hash: _hash, signature: _signature, ...fields } = out[i];
    out[i] = signRoundRecord({ ...fields, prevHash: i === 0 ? ZERO_HASH : out[i - 1].hash }, secretKey);
  }
  return out;
}

test('an aborted round does not advance the learning-rate schedule: the rate runs over aggregated rounds', async (t) => {
  const fed = await startTestFederation(t, {
    rounds: 2,
    minUpdates: 2,
    roundDeadlineSeconds: 5, // round 1 waits it out; rounds 2 and 3 close at their quorum
    training: {
      localSteps: 1,
      batchSize: 1,
      lr: 1e-2,
      cutoffLen: 32,
      template: 'chat',
      trainOnInputs: false,
      lrSchedule: { kind: 'linear', finalFraction: 0.5 },
    },
  });
  const before = snapshotBlobs(fed.root);
  const busy = await joined(fed, 'busy');
  const idle = await joined(fed, 'idle');
  t.teardown(() => [busy, idle].forEach((p) => p.close()));
  const open1 = await busy.roundOpen(1);
  t.is(open1.training.learningRate, 1e-2);
  t.like(await busy.upload(await busy.update(open1)), { ok: true });
  await fed.waitFor('round-aborted', (e) => e.round === 1);
  // Round 2 is the first aggregated round: it trains at the first rate again, round 3 at the last.
  const rates: number[] = [];
  for (const round of [2, 3]) {
    const open = await busy.roundOpen(round);
    rates.push(open.training.learningRate);
    for (const p of [busy, idle]) t.like(await p.upload(await p.update(open)), { ok: true });
    await fed.waitFor('round-closed', (e) => e.round === round);
  }
  t.deepEqual(rates, [1e-2, 5e-3]);
  t.deepEqual(await fed.coordinator.finished, { completed: true });
  t.deepEqual(
    (await logRecords(fed.root)).flatMap((r) => (r.kind === 'round-open' ? [r.body.trainingRound] : [])),
    [1, 1, 2],
  );
  // The audit checks each training round, and recomputes both aggregates; busy's round-1 update
  // stays stored, never applied.
  await assertStoreIntact(t, fed.root, before, { orphans: 1 });
});
