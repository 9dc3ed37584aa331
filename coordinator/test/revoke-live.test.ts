// Revocation while the coordinator runs (federation/revoke.ts, revoke-requests.ts,
// server/revocations.ts): `fedit coordinator revoke` asks the running coordinator, which appends
// the record, closes the participant's connection, refuses it from then on and takes its update
// out of the open round; the command waits for the record and reports it.

import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { revokeParticipant } from '../src/index.ts';
import { REQUESTS_DIR } from '../src/federation/revoke-requests.ts';
import { fedit } from './helpers/cli.ts';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

test('a participant revoked while the coordinator runs is dropped at once, its counted update taken out', async (t) => {
  const fed = await startTestFederation(t, {
    participantsPerRound: { fraction: 1, minimum: 3 },
    minUpdates: 1,
  });
  const before = snapshotBlobs(fed.root);
  const peers: Peer[] = [];
  t.teardown(() => peers.forEach((p) => p.close()));
  for (const name of ['mallory', 'bob', 'carol']) {
    const peer = await (await Peer.connect(fed.target())).join(fed.inviteToken(), name);
    peers.push(peer);
  }
  const [mallory, bob, carol] = peers;
  const open = await mallory.roundOpen(1);
  t.is(open.selected.length, 3);
  t.true((await mallory.upload(await mallory.update(open))).ok, "mallory's update is counted");

  // An unknown participant: the running coordinator answers for its log.
  await t.throwsAsync(revokeParticipant(fed.root, 'f'.repeat(32), 'who?'), { code: 'PARTICIPANT_UNKNOWN' });

  const done = await fedit('coordinator', 'revoke', fed.root, mallory.id, '--reason', 'poisoned updates');
  t.is(done.code, 0, done.stderr);
  t.regex(done.stdout, new RegExp(`revoked ${mallory.id} \\(record \\d+, by the running coordinator`));
  await fed.waitFor('revoked', (e) => e.participant === mallory.id);
  t.is(await mallory.disconnected, 'io server disconnect');

  // It cannot come back.
  const again = await Peer.connect(fed.target(), mallory.identity);
  peers.push(again);
  const proof = await again.prove();
  t.false(proof.ok);
  if (!proof.ok) t.is(proof.error.code, 'AUTH_REVOKED');

  // The round closes with the others' updates; mallory is listed as dropped, not counted.
  for (const peer of [bob, carol]) t.true((await peer.upload(await peer.update(open))).ok);
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 2);
  t.deepEqual(closed.dropped, [{ participant: mallory.id, reason: 'revoked: poisoned updates' }]);
  const records = await logRecords(fed.root);
  const revoke = records.find((r) => r.kind === 'revoke');
  t.deepEqual(revoke?.body, { participant: mallory.id, reason: 'poisoned updates' });
  await t.throwsAsync(revokeParticipant(fed.root, mallory.id, 'again'), { code: 'PARTICIPANT_REVOKED' });
  // Nothing is left of the requests, and the store holds only what the log names (mallory's
  // counted-then-revoked update is an orphan, removed after the round).
  t.deepEqual(existsSync(join(fed.root, REQUESTS_DIR)) ? readdirSync(join(fed.root, REQUESTS_DIR)) : [], []);
  await assertStoreIntact(t, fed.root, before);
});

test('a revocation the coordinator does not take up in time is withdrawn, nothing recorded', async (t) => {
  const fed = await startTestFederation(t);
  await fed.coordinator.close();
  // A lock naming this process as a running coordinator, but nothing serving requests.
  const { lockFederation } = await import('../src/federation/lock.ts');
  const lock = lockFederation(fed.root, 'coordinator');
  t.teardown(() => lock.release());
  const peer = '0'.repeat(32);
  await t.throwsAsync(revokeParticipant(fed.root, peer, 'x', { waitMs: 300 }), {
    code: 'REVOKE_TIMEOUT',
    message: /did not take up the revocation within 1 s; the request is withdrawn, nothing was recorded/,
  });
  t.deepEqual(readdirSync(join(fed.root, REQUESTS_DIR)), []);
});
