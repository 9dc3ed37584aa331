// Participants that go away: one drops its connection mid-upload and comes back (the upload
// resumes where the coordinator's acknowledgements left it), one never comes back (the round
// closes at its deadline with the honest update, and the round-closed record says why the other
// was dropped), and a round with fewer updates than the federation requires (aborted visibly in
// the log, the global adapter unchanged, the next round opens and completes).

import test from 'ava';
import type { ContentHash } from '@fedit/shared';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

test('a participant that disconnects mid-upload resumes from the first chunk the coordinator lacks', async (t) => {
  const fed = await startTestFederation(t);
  const before = snapshotBlobs(fed.root);
  const honest = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  let flaky = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  t.teardown(() => [honest, flaky].forEach((p) => p.close()));
  const open = await flaky.roundOpen(1);
  const update = await flaky.update(open);
  t.true(update.envelope.chunkCount > 4, `${update.envelope.chunkCount} chunks`);

  t.like(await flaky.upload(update, 3), { ok: true, resumeFrom: 0 });
  // The connection drops without a goodbye (the transport closes under it).
  flaky.socket.io.engine.close();
  await flaky.disconnected;
  await fed.waitFor('disconnected', (e) => e.participant === flaky.id);

  // Meanwhile the honest participant is counted; the round waits for the other.
  t.like(await honest.upload(await honest.update(open)), { ok: true });
  t.is(fed.events.filter((e) => e.type === 'round-closed').length, 0);

  flaky = await flaky.reconnect();
  t.is(
    (await flaky.roundOpen(1)).globalAdapterHash,
    open.globalAdapterHash,
    'the open round is announced again',
  );
  const begin = await flaky.request('update:begin', { envelope: update.envelope });
  t.like(begin, { ok: true, uploadId: update.id, resumeFrom: 3 });
  for (let i = 3; i < update.envelope.chunkCount; i++) {
    t.like(await flaky.request('update:chunk', update.chunk(i)), { ok: true, received: i + 1 });
  }
  t.like(await flaky.request('update:commit', { uploadId: update.id }), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 2);
  t.deepEqual(closed.dropped, []);
  await fed.coordinator.finished;
  await assertStoreIntact(t, fed.root, before);
});

test('a participant that never comes back is dropped at the deadline, with the reason in the log', async (t) => {
  // The deadline leaves a loaded 2-core CI machine room for the honest upload (well under a second
  // when idle); the round waits it out in full for the one that never comes back.
  const fed = await startTestFederation(t, { roundDeadlineSeconds: 6 });
  const before = snapshotBlobs(fed.root);
  const honest = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  const gone = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  t.teardown(() => honest.close());
  const open = await gone.roundOpen(1);
  const update = await gone.update(open);
  t.like(await gone.upload(update, 2), { ok: true });
  gone.close();
  await fed.waitFor('disconnected', (e) => e.participant === gone.id);
  t.like(await honest.upload(await honest.update(open, { exampleCount: 4 })), { ok: true });

  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 1);
  t.deepEqual(closed.dropped, [
    { participant: gone.id, reason: 'disconnected, no update before the deadline' },
  ]);
  t.like(await honest.roundClosed(1), { outcome: 'aggregated', participants: 1 });
  t.true(Date.now() >= open.deadline, 'closed at the deadline');
  const record = (await logRecords(fed.root)).at(-1);
  t.is(record?.kind, 'round-closed');
  if (record?.kind === 'round-closed') {
    t.deepEqual(record.body.dropped, closed.dropped);
    t.deepEqual(
      record.body.updates.map((u) => [u.participant, u.exampleCount]),
      [[honest.id, 4]],
    );
  }
  await fed.coordinator.finished;
  await assertStoreIntact(t, fed.root, before);
});

test('too few updates: the round is aborted visibly, the global adapter is unchanged, the next round runs', async (t) => {
  // One round to aggregate: the aborted round does not count toward it, so a second one opens.
  const fed = await startTestFederation(t, { rounds: 1, minUpdates: 2, roundDeadlineSeconds: 5 });
  const before = snapshotBlobs(fed.root);
  const busy = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  const idle = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  t.teardown(() => [busy, idle].forEach((p) => p.close()));
  const open1 = await busy.roundOpen(1);
  t.like(await busy.upload(await busy.update(open1)), { ok: true });

  const aborted = await fed.waitFor('round-aborted', (e) => e.round === 1);
  t.regex(
    aborted.reason,
    /1 update\(s\) counted, fewer than the 2 the federation requires; an aborted round does not count toward the federation's 1 rounds and is retried/,
  );
  for (const p of [busy, idle]) {
    t.like(await p.roundClosed(1), {
      round: 1,
      outcome: 'aborted',
      adapterHash: open1.globalAdapterHash,
      participants: 0,
    });
  }

  const open2 = await idle.roundOpen(2);
  t.is(open2.globalAdapterHash, open1.globalAdapterHash, 'round 2 trains from the unchanged adapter');
  for (const p of [busy, idle]) t.like(await p.upload(await p.update(open2)), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 2);
  t.is(closed.updates, 2);
  t.not(closed.adapter as ContentHash, open1.globalAdapterHash);
  t.deepEqual(await fed.coordinator.finished, { completed: true });

  const records = await logRecords(fed.root);
  const rounds = records.filter((r) => r.kind.startsWith('round-')).map((r) => `${r.round}:${r.kind}`);
  t.deepEqual(rounds, ['1:round-open', '1:round-aborted', '2:round-open', '2:round-closed']);
  const abortRecord = records.find((r) => r.kind === 'round-aborted');
  if (abortRecord?.kind === 'round-aborted') {
    t.deepEqual(abortRecord.body.dropped, [
      { participant: idle.id, reason: 'no update before the deadline' },
    ]);
  }
  // The update counted in the aborted round stays in the blob store, unreferenced: never applied.
  await assertStoreIntact(t, fed.root, before, { orphans: 1 });
});
