// A participant renames itself after joining, through a real coordinator on loopback: the rename
// record carries its signature, the audit passes and the status shows the new name; a rename
// signed by another key, for another federation, replayed, unchanged or unauthenticated is
// refused and stores nothing; a rename record the coordinator altered (and re-signed) fails the audit.

import test from 'ava';
import {
  FederationState,
  auditFederation,
  generateIdentity,
  signRename,
  signRoundRecord,
  verifyRoundLog,
  ZERO_HASH,
  type RoundRecord,
} from '@fedit/shared';
import { federationStatus, openFederationDir } from '../src/index.ts';
import { logRecords, startTestFederation } from './helpers/federation.ts';
import { Peer, type Ack } from './helpers/peer.ts';

const error = (ack: Ack) => (ack.ok ? undefined : ack.error);

test('a participant renames itself; forged, replayed and unchanged renames are refused; the audit checks the record', async (t) => {
  const fed = await startTestFederation(t);
  const alice = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'alice', { ready: false });
  const stranger = await Peer.connect(fed.target());
  t.teardown(() => [alice, stranger].forEach((p) => p.close()));
  const federation = alice.context.federation;
  const renameOf = (displayName: string, identity = alice.identity, f = federation) =>
    signRename(identity, { federation: f, participant: alice.id, displayName });

  const request = renameOf('Alice B.');
  t.like(await alice.request('participant:rename', request), { ok: true, displayName: 'Alice B.' });
  await fed.waitFor('renamed', (e) => e.participant === alice.id && e.displayName === 'Alice B.');

  const refusals: [string, unknown, string, string?][] = [
    ['replayed', request, 'RENAME_REPLAYED', 'payload.nonce'],
    ['unchanged', renameOf('Alice B.'), 'RENAME_UNCHANGED', 'payload.displayName'],
    ['another key', renameOf('Mallory', generateIdentity()), 'PROTOCOL_SIGNATURE', 'payload.signature'],
    [
      'another federation',
      renameOf('Mallory', alice.identity, 'elsewhere'),
      'PROTOCOL_SIGNATURE',
      'payload.signature',
    ],
    [
      'spaces around the name',
      { ...renameOf('x'), displayName: ' Mallory ' },
      'PROTOCOL_FORMAT',
      'payload.displayName',
    ],
  ];
  for (const [what, payload, code, field] of refusals)
    t.like(error(await alice.request('participant:rename', payload)), { code, field }, what);
  t.is(error(await stranger.request('participant:rename', renameOf('Mallory')))?.code, 'AUTH_REQUIRED');

  // The log holds one rename, with the participant's own signature; the audit passes.
  const records = await logRecords(fed.root);
  const renames = records.filter((r) => r.kind === 'rename');
  t.is(renames.length, 1);
  t.like(renames[0].body, {
    participant: alice.id,
    displayName: 'Alice B.',
    nonce: Buffer.from(request.nonce).toString('hex'),
    signature: Buffer.from(request.signature).toString('hex'),
  });
  const state = new FederationState();
  records.forEach((r) => state.apply(r));
  t.is(state.participant(alice.id)?.displayName, 'Alice B.');
  const audit = await auditFederation(fed.root);
  t.true(audit.ok, JSON.stringify(audit.firstFailure));
  t.deepEqual((await federationStatus(fed.root)).participants, [{ id: alice.id, name: 'Alice B.' }]);

  // The coordinator alters the name (and re-signs the log), or replays the rename: the audit fails.
  const { identity } = openFederationDir(fed.root);
  const options = { coordinatorPublicKey: identity.sign.publicKey };
  t.true(verifyRoundLog(records, options).ok);
  const isRename = (r: RoundRecord) => r.kind === 'rename';
  const altered = resigned(records, identity.sign.secretKey, (r) => {
    if (r.kind === 'rename') r.body.displayName = 'Mallory';
    return isRename(r);
  });
  t.is(verifyRoundLog(altered, options).firstFailure?.code, 'RENAME_SIGNATURE');
  const replayed = [...records, structuredClone(renames[0])];
  replayed[records.length] = relinkedAt(replayed, records.length, identity.sign.secretKey);
  t.is(verifyRoundLog(replayed, options).firstFailure?.code, 'RENAME_REPLAYED');
  const unknownParticipant = resigned(records, identity.sign.secretKey, (r) => {
    if (r.kind === 'rename') r.body.participant = 'f'.repeat(32);
    return isRename(r);
  });
  t.is(verifyRoundLog(unknownParticipant, options).firstFailure?.code, 'NOT_ENROLLED');
  // A rename after the participant's revocation: its own signature does not make it valid.
  const at = records.findIndex(isRename);
  const revoke = {
    ...structuredClone(records[at]),
    kind: 'revoke',
    body: { participant: alice.id, reason: 'spam' },
  };
  const revokedFirst = [...records.slice(0, at), revoke as RoundRecord, ...records.slice(at)];
  const afterRevoke = resigned(revokedFirst, identity.sign.secretKey, (r) => r.kind === 'revoke');
  t.is(verifyRoundLog(afterRevoke, options).firstFailure?.code, 'REVOKED_PARTICIPANT');
});

/** A copy of `records` where `edit` changed some (returning true), re-chained and re-signed from the first. */
function resigned(
  records: RoundRecord[],
  secretKey: Uint8Array,
  edit: (r: RoundRecord) => boolean,
): RoundRecord[] {
  const out = records.map((r) => structuredClone(r));
  const from = out.findIndex((r) => edit(r));
  for (let i = from < 0 ? out.length : from; i < out.length; i++) out[i] = relinkedAt(out, i, secretKey);
  return out;
}

/** Record i of `records` at position i, chained to record i - 1 and re-signed by the coordinator. */
function relinkedAt(records: RoundRecord[], i: number, secretKey: Uint8Array): RoundRecord {
  const { hash: _hash, signature: _signature, ...fields } = records[i];
  const prevHash = i === 0 ? ZERO_HASH : records[i - 1].hash;
  return signRoundRecord({ ...fields, seq: i, prevHash }, secretKey);
}
