// The fold over a round log (FederationState): the one state every reader of a log derives, record
// by record. The log writer's state, a fold of the records read back, and the verifier's report
// all say the same about the same log.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  FederationState,
  readRoundLog,
  RoundLog,
  selectParticipants,
  verifyRoundLog,
  type RoundLogOptions,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5));
const hashOf = (c: string) => `sha256:${c.repeat(64)}`;

function logOptions(): RoundLogOptions {
  let clock = Date.parse('2026-06-01T08:00:00.000Z');
  return {
    federation: 'fed',
    coordinatorSecretKey: coordinator.secretKey,
    now: () => new Date((clock += 1000)),
  };
}

function counted(participant: string, round: number, exampleCount: number, updateHash: string, from: string) {
  const signed = signedUpdate(participantIdentity(participant), {
    federation: 'fed',
    round,
    globalAdapterHash: from,
    exampleCount,
  });
  return { participant, exampleCount, updateHash, ...signed };
}

/**
 * config; p1..p3 enrolled (p2 with a box key, made up, and a display name); round 1 closed counting p1 and
 * p3; p3 revoked; round 2 aborted; round 3 open. Returns the digest of p1's counted envelope.
 */
async function writeFederation(log: RoundLog): Promise<string> {
  await log.append({ kind: 'config', body: { settings: { rank: 8 }, globalAdapter: hashOf('0') } });
  for (const participant of ['p1', 'p2', 'p3']) {
    const extra = participant === 'p2' ? { boxKey: 'box-key-of-p2', displayName: 'Bea' } : {};
    const publicKey = publicKeyHex(participantIdentity(participant));
    await log.append({ kind: 'enrol', body: { participant, publicKey, ...extra } });
  }
  const open = async (seed: string, globalAdapter: string) => {
    const selection = { seed, fraction: '1', minimum: 1, selected: log.state.eligibleParticipants() };
    selection.selected = selectParticipants(seed, selection.selected, 1, 1);
    const rule = { name: 'fedit', config: {} };
    await log.append({
      kind: 'round-open',
      body: { rule, selection, globalAdapter, deadline: '2026-06-02T00:00:00.000Z' },
    });
    return { rule, selection };
  };
  const { rule, selection } = await open('r1', hashOf('0'));
  const updates = [
    counted('p1', 1, 10, hashOf('1'), hashOf('0')),
    counted('p3', 1, 30, hashOf('3'), hashOf('0')),
  ];
  await log.append({
    kind: 'round-closed',
    body: {
      rule,
      selection,
      updates,
      globalAdapterIn: hashOf('0'),
      globalAdapterOut: hashOf('a'),
      dropped: [{ participant: 'p2', reason: 'late' }],
      metrics: { examples: 40, trainLoss: '1.25' },
    },
  });
  await log.append({ kind: 'revoke', body: { participant: 'p3', reason: 'left' } });
  await open('r2', hashOf('a'));
  await log.append({ kind: 'round-aborted', body: { reason: 'too few updates', dropped: [] } });
  await open('r3', hashOf('a'));
  return updates[0].envelopeDigest;
}

/** What a reader asks of the state, in one comparable value. */
function summary(state: FederationState) {
  return {
    nextSeq: state.nextSeq,
    head: state.head,
    federation: state.federation,
    lastRound: state.lastRound,
    openRound: state.openRound?.round,
    globalAdapter: state.globalAdapter,
    eligible: state.eligibleParticipants(),
    participants: [...state.participants()],
    rounds: [...state.rounds().values()].map((r) => [r.round, r.status, r.rule, r.selected, r.counted]),
  };
}

test('the writer, a fold of the records read back, and a reopened log hold the same state', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-state-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'rounds.jsonl');
  const log = await RoundLog.open(path, logOptions());
  const digest = await writeFederation(log);
  const written = summary(log.state);
  await log.close();

  const { records } = await readRoundLog(path);
  const folded = new FederationState();
  for (const record of records) folded.apply(record);
  t.deepEqual(summary(folded), written);
  const reopened = await RoundLog.open(path, logOptions());
  t.deepEqual(summary(reopened.state), written);
  await reopened.close();

  t.is(written.nextSeq, records.length);
  t.is(written.head, records.at(-1)!.hash);
  t.is(written.lastRound, 3);
  t.is(written.openRound, 3);
  t.is(
    written.globalAdapter,
    hashOf('a'),
    'the closed round made its output the global adapter; the abort did not',
  );
  t.deepEqual(written.eligible, ['p1', 'p2']);
  t.true(folded.isRevoked('p3'));
  t.deepEqual(folded.participant('p3')?.revoked, { at: records[6].time, reason: 'left' });
  t.is(folded.participant('p2')?.displayName, 'Bea');
  t.is(folded.participant('p2')?.boxKey, 'box-key-of-p2');
  t.is(folded.participantKey('p1'), publicKeyHex(participantIdentity('p1')));
  t.is(folded.participantWithKey(publicKeyHex(participantIdentity('p1')).toUpperCase()), 'p1');
  t.true(folded.hasEnvelope(digest));
  t.false(folded.hasEnvelope(hashOf('f')));
  t.deepEqual(written.rounds, [
    [1, 'closed', 'fedit', ['p1', 'p2', 'p3'], ['p1', 'p3']],
    [2, 'aborted', 'fedit', ['p1', 'p2'], []],
    [3, 'open', 'fedit', ['p1', 'p2'], []],
  ]);
  t.deepEqual(folded.rounds().get(1)?.metrics, { examples: 40, trainLoss: '1.25' });

  // The verifier judges each record against the same fold: its rounds are the fold's.
  const report = verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey });
  t.true(report.ok, JSON.stringify(report.problems));
  t.is(report.head, written.head);
  t.deepEqual(
    report.rounds.map((r) => [r.round, r.status, r.rule, r.selected, r.participants]),
    written.rounds,
  );
});
