// What the coordinator gives out and what it holds for a participant, over real sockets on
// loopback: 'adapter:get' serves the global adapters the log names and nothing else (a counted
// update is stored decrypted in the same blob store, and must not reach another participant, nor
// be confirmed to exist); and a participant has at most one upload in progress per round, so
// opening envelope after envelope cannot fill the coordinator's disk.

import test, { type ExecutionContext } from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BlobStore, federationPaths, type ContentHash } from '@fedit/shared';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer, type Ack } from './helpers/peer.ts';

function assertUnknownAdapter(t: ExecutionContext, ack: Ack, hash: string): void {
  t.false(ack.ok, `adapter:get ${hash} is refused`);
  if (ack.ok) return;
  t.deepEqual(ack.error, {
    code: 'ADAPTER_UNKNOWN',
    message: `no global adapter ${hash} here`,
    field: 'payload.hash',
  });
}

test("a participant cannot download another's update, even by its hash; global adapters are served, after a restart too", async (t) => {
  const fed = await startTestFederation(t, { rounds: 2, minUpdates: 2 });
  let first = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'first');
  let second = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'second');
  t.teardown(() => [first, second].forEach((p) => p.close()));
  const open1 = await first.roundOpen(1);
  // Different updates, so that their mean (the next global adapter) is neither of them.
  const shift = (d: number) => ({ values: (_: string, g: Float32Array) => g.map((v) => v + d) });
  t.like(await first.upload(await first.update(open1, shift(1e-3))), { ok: true });
  t.like(await second.upload(await second.update(open1, shift(-3e-3))), { ok: true });
  await fed.waitFor('round-closed', (e) => e.round === 1);

  const closed = (await logRecords(fed.root)).find((r) => r.kind === 'round-closed');
  if (closed?.kind !== 'round-closed') return t.fail('round 1 has a round-closed record');
  const firstUpdate = closed.body.updates.find((u) => u.participant === first.id)!.updateHash;
  const blobs = new BlobStore(federationPaths(fed.root).blobs);
  t.true(blobs.has(firstUpdate), "the first participant's update is stored (in plaintext)");
  t.not(firstUpdate, closed.body.globalAdapterOut);

  // Refused exactly as a hash that was never stored: nothing tells the update exists.
  const never = `sha256:${'0'.repeat(64)}`;
  assertUnknownAdapter(t, await second.request('adapter:get', { hash: firstUpdate, index: 0 }), firstUpdate);
  assertUnknownAdapter(t, await second.request('adapter:get', { hash: never, index: 0 }), never);
  assertUnknownAdapter(t, await first.request('adapter:get', { hash: firstUpdate, index: 0 }), firstUpdate);

  // The genesis adapter and round 1's result are served, and round 2 trains from the latter.
  const open2 = await second.roundOpen(2);
  t.is(open2.globalAdapterHash, closed.body.globalAdapterOut as ContentHash);
  t.true((await second.adapter(open1.globalAdapterHash)).size > 0, 'the initial adapter is served');
  t.true((await second.adapter(open2.globalAdapterHash)).size > 0, "round 1's adapter is served");

  // After a restart the servable set comes from the log alone.
  const before = snapshotBlobs(fed.root);
  await fed.restart();
  [first, second] = [await first.reconnect(fed.target()), await second.reconnect(fed.target())];
  t.true((await second.adapter(open2.globalAdapterHash)).size > 0, "round 1's adapter is still served");
  t.true((await first.adapter(open1.globalAdapterHash)).size > 0, 'the initial adapter is still served');
  assertUnknownAdapter(t, await second.request('adapter:get', { hash: firstUpdate, index: 0 }), firstUpdate);
  await assertStoreIntact(t, fed.root, before);
});

test('one upload in progress per participant and round: a new envelope replaces the old one and its chunks', async (t) => {
  const fed = await startTestFederation(t);
  const before = snapshotBlobs(fed.root);
  const honest = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'honest');
  const greedy = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'greedy');
  t.teardown(() => [honest, greedy].forEach((p) => p.close()));
  const open = await greedy.roundOpen(1);
  const roundUploads = join(federationPaths(fed.root).uploads, '1');
  const inProgress = () => (existsSync(roundUploads) ? readdirSync(roundUploads).sort() : []);

  // The honest participant has half an upload in progress throughout.
  const honestUpdate = await honest.update(open);
  t.like(await honest.upload(honestUpdate, 2), { ok: true, resumeFrom: 0 });

  // Envelope after envelope, each partly sent: only the latest one is kept.
  const updates = [];
  for (let i = 0; i < 5; i++) {
    const update = await greedy.update(open, { envelope: { createdAt: Date.now() + i } });
    t.like(await greedy.upload(update, 3), { ok: true, uploadId: update.id, resumeFrom: 0 });
    updates.push(update);
    t.deepEqual(
      inProgress(),
      [honestUpdate.id.slice(7), update.id.slice(7)].sort(),
      `after envelope ${i + 1}: one upload folder per participant`,
    );
  }
  t.is(new Set(updates.map((u) => u.id)).size, 5, 'five distinct envelopes');
  const [replaced, latest] = [updates[0], updates[4]];
  t.like(await greedy.request('update:chunk', replaced.chunk(3)), {
    ok: false,
    error: { code: 'UPLOAD_UNKNOWN', field: 'payload.uploadId' },
  });
  t.like(await greedy.request('update:commit', { uploadId: replaced.id }), {
    ok: false,
    error: { code: 'UPLOAD_UNKNOWN' },
  });

  // Resuming the latest envelope keeps its chunks; going back to a replaced one starts it over
  // (and replaces the latest in turn).
  t.like(await greedy.request('update:begin', { envelope: latest.envelope }), {
    ok: true,
    uploadId: latest.id,
    resumeFrom: 3,
  });
  t.like(await greedy.request('update:begin', { envelope: replaced.envelope }), {
    ok: true,
    uploadId: replaced.id,
    resumeFrom: 0,
  });
  t.deepEqual(inProgress(), [honestUpdate.id.slice(7), replaced.id.slice(7)].sort());

  // Both participants finish; exactly one update of each counts.
  t.like(await greedy.upload(replaced), { ok: true });
  t.like(await honest.upload(honestUpdate), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 2);
  const record = (await logRecords(fed.root)).find((r) => r.kind === 'round-closed');
  if (record?.kind === 'round-closed')
    t.deepEqual(
      record.body.updates.map((u) => u.envelopeDigest).sort(),
      [honestUpdate.id, replaced.id].sort(),
    );
  await fed.coordinator.finished;
  await assertStoreIntact(t, fed.root, before);
});
