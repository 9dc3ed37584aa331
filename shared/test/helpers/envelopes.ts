// Participants with real identities and the signed envelopes they send, in the form a round-closed
// record keeps them, for tests that write round logs the way the coordinator does.

import { createHash } from 'node:crypto';
import {
  DEFAULT_CHUNK_BYTES,
  canonicalPayloadHash,
  chunkCountFor,
  envelopeId,
  generateIdentity,
  recordEnvelope,
  sha256Hash,
  signEnvelope,
  tensorFromF32,
  tensorSchemaOf,
  type ContentHash,
  type HeldOutFigures,
  type Identity,
  type RecordedEnvelope,
  type SignedEnvelope,
  type Tensor,
} from '@fedit/shared';

/** The same identity for the same name, every run. */
export function participantIdentity(name: string): Identity {
  return generateIdentity(new Uint8Array(createHash('sha256').update(`test participant ${name}`).digest()));
}

/** The public key as enrol records write it. */
export function publicKeyHex(identity: Identity): string {
  return Buffer.from(identity.sign.publicKey).toString('hex');
}

/** One small tensor: stands in for an update when a test has no blobs (the signature is not checked then). */
export const PLACEHOLDER_TENSORS = new Map<string, Tensor>([
  ['w', tensorFromF32([2], Float32Array.of(1, 2))],
]);

/** The participant's signed envelope for an update of `tensors`, as a counted update records it. */
export function signedUpdate(
  identity: Identity,
  fields: {
    federation: string;
    round: number;
    globalAdapterHash: string;
    exampleCount: number;
    tensors?: ReadonlyMap<string, Tensor>;
    createdAt?: number;
    heldOut?: HeldOutFigures;
  },
): { envelope: RecordedEnvelope; envelopeDigest: string } {
  const tensors = fields.tensors ?? PLACEHOLDER_TENSORS;
  const payload = canonicalPayloadHash(tensors);
  const signed = signEnvelope(
    {
      version: 1,
      federation: fields.federation,
      round: fields.round,
      participant: identity.sign.publicKey,
      globalAdapterHash: fields.globalAdapterHash as ContentHash,
      exampleCount: fields.exampleCount,
      tensorSchema: tensorSchemaOf(tensors),
      payloadHash: payload.hash as ContentHash,
      payloadBytes: payload.bytes,
      chunkBytes: DEFAULT_CHUNK_BYTES,
      chunkCount: chunkCountFor(payload.bytes, DEFAULT_CHUNK_BYTES),
      createdAt: fields.createdAt ?? Date.parse('2026-03-01T09:00:00.000Z'),
      ...(fields.heldOut && { heldOut: fields.heldOut }),
    },
    identity,
  );
  return { envelope: recordEnvelope(signed), envelopeDigest: envelopeId(signed) };
}

/**
 * A participant's signed envelope for an opaque payload (one placeholder tensor announced), in
 * chunks of `chunkBytes`: what the upload tests send, sealed or not.
 */
export function signedPayloadEnvelope(
  participant: Identity,
  payload: Uint8Array,
  o: { round: number; chunkBytes: number },
): SignedEnvelope {
  return signEnvelope(
    {
      version: 1,
      federation: 'f1',
      round: o.round,
      participant: participant.sign.publicKey,
      globalAdapterHash: sha256Hash(new Uint8Array(0)),
      exampleCount: 10,
      tensorSchema: [{ name: 'w', shape: [4], dtype: 'F32' }],
      payloadHash: sha256Hash(payload),
      payloadBytes: payload.byteLength,
      chunkBytes: o.chunkBytes,
      chunkCount: chunkCountFor(payload.byteLength, o.chunkBytes),
      createdAt: Date.now(),
    },
    participant,
  );
}
