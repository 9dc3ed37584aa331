// Envelopes and sealed chunks that do not belong: a replayed envelope (in the same round after it
// was counted, and in a later round), an envelope for another round, for another federation,
// altered after signing, carrying another participant's key, trained from a stale adapter; a
// sealed chunk with one byte flipped, one sealed for another index, one from another upload. Each
// is refused with code and field; the chunks that were accepted are not disturbed; the honest
// participant is counted in both rounds and the log verifies.

import test from 'ava';
import { sha256, type ContentHash } from '@fedit/shared';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer, withEnvelope, type Ack } from './helpers/peer.ts';

const error = (ack: Ack) => (ack.ok ? undefined : ack.error);

test('replayed, misdirected, forged and tampered uploads are refused; the honest ones count in both rounds', async (t) => {
  const fed = await startTestFederation(t, { rounds: 2 });
  const before = snapshotBlobs(fed.root);
  const honest = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'honest');
  const offender = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'offender');
  t.teardown(() => [honest, offender].forEach((p) => p.close()));
  const open = await offender.roundOpen(1);
  const begin = (envelope: unknown) => offender.request('update:begin', { envelope });

  // ---- envelopes ---------------------------------------------------------------------------------

  const nextRound = await offender.update(open, { envelope: { round: 2 } });
  t.like(error(await begin(nextRound.envelope)), {
    code: 'ROUND_CLOSED',
    field: 'envelope.round',
    message: 'round 2 is not open (round 1 is)',
  });
  const elsewhere = await offender.update(open, { envelope: { federation: 'another-federation' } });
  t.like(error(await begin(elsewhere.envelope)), {
    code: 'UPDATE_FEDERATION',
    field: 'envelope.federation',
  });
  const stale = await offender.update(open, { envelope: { globalAdapterHash: `sha256:${'a'.repeat(64)}` } });
  t.like(error(await begin(stale.envelope)), {
    code: 'UPDATE_STALE',
    field: 'envelope.globalAdapterHash',
  });

  const update = await offender.update(open, { exampleCount: 5 });
  // Altered after signing: a larger weight, the same signature.
  const forged = await begin({ ...update.envelope, exampleCount: 5000 });
  t.like(error(forged), { code: 'PROTOCOL_SIGNATURE', field: 'envelope.signature' });
  t.regex(error(forged)?.message ?? '', /altered after signing/);
  // A malleated signature (S + L, which tweetnacl alone would accept) is refused as well.
  const malleated = update.envelope.signature.slice();
  addGroupOrder(malleated);
  t.like(error(await begin({ ...update.envelope, signature: malleated })), {
    code: 'PROTOCOL_SIGNATURE',
    field: 'envelope.signature',
  });
  // The honest participant's own signed envelope, sent over the offender's connection.
  const honestUpdate = await honest.update(open, { exampleCount: 9 });
  t.like(error(await begin(honestUpdate.envelope)), {
    code: 'UPDATE_PARTICIPANT',
    field: 'envelope.participant',
  });

  // ---- sealed chunks -----------------------------------------------------------------------------

  t.like(await begin(update.envelope), { ok: true, uploadId: update.id, resumeFrom: 0 });
  const chunk = (index: number) => offender.request('update:chunk', update.chunk(index));
  t.like(await chunk(0), { ok: true, received: 1 });

  // One byte flipped, with a matching SHA-256: not damage in transit, tampering; the seal fails.
  const tampered = update.chunk(1);
  tampered.data[10] ^= 0x01;
  tampered.sha256 = sha256(tampered.data);
  const opened = error(await offender.request('update:chunk', tampered));
  t.like(opened, { code: 'CRYPTO_OPEN_FAILED', field: 'payload.data' });
  t.regex(opened?.message ?? '', /chunk 1 of \d+ .* failed authentication/);
  // Chunk 2's sealed bytes presented as chunk 1 (same length, another position in the AAD).
  const moved = { ...update.chunk(2), index: 1 };
  t.like(error(await offender.request('update:chunk', moved)), {
    code: 'CRYPTO_OPEN_FAILED',
    field: 'payload.data',
  });
  // Chunk 1 of another upload (another envelope, so another key), under this upload's id.
  const other = withEnvelope(offender, stale.envelope, stale.payload);
  t.like(error(await offender.request('update:chunk', { ...other.chunk(1), uploadId: update.id })), {
    code: 'CRYPTO_OPEN_FAILED',
    field: 'payload.data',
  });
  // The honest participant cannot add chunks to the offender's upload (nor the other way round).
  t.like(error(await honest.request('update:chunk', update.chunk(1))), {
    code: 'UPLOAD_UNKNOWN',
    field: 'payload.uploadId',
  });
  // None of that disturbed the upload: the coordinator holds chunk 0 only, and the rest completes it.
  t.like(await begin(update.envelope), { ok: true, resumeFrom: 1 });
  t.like(await offender.upload(update), { ok: true });

  // ---- replays -----------------------------------------------------------------------------------

  const replay = error(await begin(update.envelope));
  t.like(replay, { code: 'UPDATE_REPLAY', field: 'envelope' });
  t.regex(replay?.message ?? '', /already counted/);
  t.like(error(await offender.request('update:commit', { uploadId: update.id })), {
    code: 'UPLOAD_UNKNOWN',
    field: 'payload.uploadId',
  });
  const second = await offender.update(open, { exampleCount: 6 });
  t.like(error(await begin(second.envelope)), { code: 'UPDATE_DUPLICATE', field: 'envelope' });

  t.like(await honest.upload(honestUpdate), { ok: true });
  const first = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(first.updates, 2);

  // Round 2: the round-1 envelope, replayed, is not accepted.
  const open2 = await offender.roundOpen(2);
  t.is(open2.globalAdapterHash, first.adapter as ContentHash);
  t.like(error(await begin(update.envelope)), { code: 'ROUND_CLOSED', field: 'envelope.round' });
  t.like(error(await offender.request('update:chunk', update.chunk(0))), {
    code: 'UPLOAD_UNKNOWN',
    field: 'payload.uploadId',
  });
  t.like(await offender.upload(await offender.update(open2)), { ok: true });
  t.like(await honest.upload(await honest.update(open2)), { ok: true });
  t.is((await fed.waitFor('round-closed', (e) => e.round === 2)).updates, 2);
  await fed.coordinator.finished;

  // Each envelope is counted once in the whole log.
  const digests = (await logRecords(fed.root)).flatMap((r) =>
    r.kind === 'round-closed' ? r.body.updates.map((u) => u.envelopeDigest) : [],
  );
  t.is(digests.length, 4);
  t.is(new Set(digests).size, 4);
  t.true(digests.includes(update.id));
  await assertStoreIntact(t, fed.root, before);
});

/** Adds the Ed25519 group order L to the scalar S (bytes 32..63, little-endian) of a signature. */
function addGroupOrder(signature: Uint8Array): void {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]);
  s += L;
  for (let i = 32; i < 64; i++) {
    signature[i] = Number(s & 0xffn);
    s >>= 8n;
  }
}
