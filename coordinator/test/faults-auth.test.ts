// Who may connect: keys that were never enrolled, proofs made for another connection, invites that
// are unknown, used or expired, and a revoked participant (revoked through revokeParticipant and
// `fedit coordinator revoke` with the coordinator stopped; while it runs: revoke-live.test.ts).
// Each is refused with code and field and stores nothing; the honest participants enrol, are
// selected (the revoked one is not) and complete the round.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateIdentity,
  identityFromSecretKeys,
  proveAuth,
  signEnrolment,
  type Identity,
} from '@fedit/shared';
import { LOCK_FILE, readInvites, revokeParticipant } from '../src/index.ts';
import { tokenHash } from '../src/federation/invites.ts';
import { fedit } from './helpers/cli.ts';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer, type Ack } from './helpers/peer.ts';

const error = (ack: Ack) => (ack.ok ? undefined : ack.error);

test('unenrolled keys, bad proofs, unknown, used and expired invites and revoked participants are refused', async (t) => {
  const fed = await startTestFederation(t);
  const before = snapshotBlobs(fed.root);
  const peers: Peer[] = [];
  t.teardown(() => peers.forEach((p) => p.close()));
  const connect = async (identity?: Identity) => {
    const peer = await Peer.connect(fed.target(), identity);
    peers.push(peer);
    return peer;
  };

  // Two participants enrol; the one to be revoked leaves (a round needs two online: none opens).
  const revoked = await (await connect()).join(fed.inviteToken(), 'mallory');
  revoked.close();
  await fed.waitFor('disconnected', (e) => e.participant === revoked.id);
  const first = await (await connect()).join(fed.inviteToken(), 'first');

  // ---- revocation with the coordinator stopped (while it runs: revoke-live.test.ts) -------------

  await fed.coordinator.close();
  t.throws(() => readFileSync(join(fed.root, LOCK_FILE)), undefined, 'the lock is released');
  await t.throwsAsync(revokeParticipant(fed.root, 'f'.repeat(32), 'who?'), { code: 'PARTICIPANT_UNKNOWN' });
  const done = await fedit('coordinator', 'revoke', fed.root, revoked.id, '--reason', 'sent spam updates');
  t.is(done.code, 0, done.stderr);
  t.regex(done.stdout, new RegExp(`revoked ${revoked.id}`));
  await t.throwsAsync(revokeParticipant(fed.root, revoked.id, 'again'), { code: 'PARTICIPANT_REVOKED' });
  await fed.restart();

  // The honest participants: one enrolled before the restart, one with a new invite. A round opens
  // for them alone (the revoked participant is not eligible).
  const aliceToken = fed.inviteToken();
  const honest = [await first.reconnect(fed.target()), await (await connect()).join(aliceToken, 'alice')];
  peers.push(honest[0]);
  const open = await honest[0].roundOpen(1);
  t.deepEqual([...open.selected].sort(), honest.map((p) => p.id).sort());
  const invitesBefore = readFileSync(join(fed.root, 'invites.jsonl'), 'utf8');

  // ---- while the round is open ----------------------------------------------------------------------

  // The revoked participant: its proof, and enrolling again with a fresh invite, as itself or with
  // its signing key paired with a new box key.
  const refused = error(await (await connect(revoked.identity)).prove());
  t.like(refused, { code: 'AUTH_REVOKED', field: 'payload.participant' });
  t.regex(refused?.message ?? '', /removed from the federation: sent spam updates/);
  const spare = fed.inviteToken();
  t.like(error(await (await connect(revoked.identity)).enrol(spare)), {
    code: 'AUTH_REVOKED',
    field: 'payload.identity.sign',
  });
  const sameSignKey = identityFromSecretKeys(
    revoked.identity.sign.secretKey.subarray(0, 32),
    generateIdentity().box.secretKey,
  );
  t.like(error(await (await connect(sameSignKey)).enrol(spare)), {
    code: 'AUTH_REVOKED',
    field: 'payload.identity.sign',
  });

  // Keys that were never enrolled; a second answer to the same challenge.
  const stranger = await connect();
  const unknown = error(await stranger.prove());
  t.like(unknown, { code: 'AUTH_UNKNOWN', field: 'payload.participant' });
  t.regex(unknown?.message ?? '', /not enrolled .* join with an invite/);
  t.like(
    error(await stranger.prove()),
    { code: 'CRYPTO_AUTH_CHALLENGE', field: 'nonce' },
    'one answer per challenge',
  );
  t.like(error(await stranger.request('adapter:get', { hash: open.globalAdapterHash, index: 0 })), {
    code: 'AUTH_REQUIRED',
  });

  // A proof made for another connection's nonce, and one signed by another key.
  const a = await connect();
  const b = await connect();
  t.like(error(await b.request('auth:prove', proveAuth(first.identity, a.context))), {
    code: 'AUTH_FAILED',
    field: 'payload.signature',
  });
  const mixed = { ...proveAuth(generateIdentity(), a.context), participant: first.identity.sign.publicKey };
  t.like(error(await a.request('auth:prove', mixed)), { code: 'AUTH_FAILED', field: 'payload.signature' });

  // Invites: unknown, expired, used; an enrolment signed for another connection's nonce.
  t.like(error(await (await connect()).enrol(new Uint8Array(32).fill(9))), {
    code: 'INVITE_UNKNOWN',
    field: 'payload.token',
  });
  const expired = error(await (await connect()).enrol(fed.expiredInviteToken()));
  t.like(expired, { code: 'INVITE_EXPIRED', field: 'payload.token' });
  t.regex(expired?.message ?? '', /expired; ask the operator for a new one/);
  const used = error(await (await connect()).enrol(aliceToken));
  t.like(used, { code: 'INVITE_USED', field: 'payload.token' });
  t.regex(used?.message ?? '', /already used/);
  const [c, d] = [await connect(), await connect()];
  const foreign = signEnrolment(generateIdentity(), d.context, { token: spare, displayName: 'x' });
  t.like(error(await c.request('enrol', foreign)), {
    code: 'PROTOCOL_SIGNATURE',
    field: 'payload.signature',
  });

  // None of that used up an invite (the expired one was added to the file by the test).
  t.is(readInvites(fed.root).get(tokenHash(spare))?.usedBy, undefined);
  const added = readFileSync(join(fed.root, 'invites.jsonl'), 'utf8').slice(invitesBefore.length);
  t.false(added.includes('"used"'), added);

  // The honest participants were served throughout.
  for (const p of honest) t.true(p.socket.connected);
  for (const p of honest) t.like(await p.upload(await p.update(open)), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 2);
  await fed.coordinator.finished;

  const kinds = (await logRecords(fed.root)).map((r) => r.kind);
  t.deepEqual(kinds, [
    'config',
    'enrol',
    'enrol',
    'revoke',
    'enrol',
    'round-open',
    'round-closed',
    'finished',
  ]);
  await assertStoreIntact(t, fed.root, before);
});
