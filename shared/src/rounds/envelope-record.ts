// A counted update's signed envelope as the round-closed record keeps it, so that an auditor can
// check that the update came from its participant, not only that the coordinator says so.
//
// The record holds every signed field of the envelope (protocol/envelope.ts) except
// `tensorSchema`, with byte strings in lowercase hex (canonical JSON has no byte strings):
//
//   version, federation, round, globalAdapterHash, exampleCount, payloadHash, payloadBytes,
//   chunkBytes, chunkCount, createdAt,   as the participant signed them
//   heldOut (when it sent figures)
//   participant                          hex of its Ed25519 public key (32 bytes)
//   signature                            hex of its Ed25519 signature (64 bytes)
//
// `tensorSchema` is left out because the stored update determines it: the coordinator counts an
// update only when its tensors are exactly the schema's (same names, shapes and dtypes, nothing
// more), and the schema lists names in ascending UTF-8 byte order, so the schema is the stored
// tensors in that order. Repeating it would make every round-closed record grow with the number
// of tensors times the number of participants (about 12 KB per participant for a 120-tensor
// adapter). An auditor rebuilds it from the update's blob, then checks:
//
//   1. the envelope digest recomputed over the rebuilt envelope is the record's envelopeDigest,
//   2. the signature verifies under the public key of the participant's enrol record,
//   3. payloadHash = SHA-256 of the canonical safetensors file of the stored tensors (the file
//      the participant serialised and sealed: F32 as sent, names ascending, no metadata; the
//      coordinator refuses any other layout) and payloadBytes its length.
//
// Together: the participant signed a hash of exactly the tensors stored under updateHash, for
// this federation, round, starting adapter and example count. A coordinator that invents or
// alters an update needs a participant's secret key.

import { createHash } from 'node:crypto';
import type { SignedEnvelope, TensorSpec, UpdateEnvelope } from '../protocol/messages.ts';
import { envelopeDigest } from '../protocol/envelope.ts';
import { DOMAINS, verifyDigest } from '../crypto/sign.ts';
import { layoutSafetensors } from '../tensors/safetensors.ts';
import { sortedTensorEntries, type TensorCollection } from '../tensors/tensor-entries.ts';
import type { Infer } from '../schema/schema.ts';
import type { recordedEnvelope } from './record-shape.ts';

/**
 * A counted update's signed envelope in a round-closed record; see the top of this file. Declared
 * in record-shape.ts from the protocol's signed envelope.
 */
export type RecordedEnvelope = Infer<typeof recordedEnvelope>;

/** The record form of a verified signed envelope (what the coordinator writes when it counts it). */
export function recordEnvelope(envelope: SignedEnvelope): RecordedEnvelope {
  return {
    version: envelope.version,
    federation: envelope.federation,
    round: envelope.round,
    participant: Buffer.from(envelope.participant).toString('hex'),
    globalAdapterHash: envelope.globalAdapterHash,
    exampleCount: envelope.exampleCount,
    payloadHash: envelope.payloadHash,
    payloadBytes: envelope.payloadBytes,
    chunkBytes: envelope.chunkBytes,
    chunkCount: envelope.chunkCount,
    createdAt: envelope.createdAt,
    ...(envelope.heldOut && { heldOut: envelope.heldOut }),
    signature: Buffer.from(envelope.signature).toString('hex'),
  };
}

/** The tensor schema an envelope announces for `tensors`: names ascending by UTF-8 bytes. */
export function tensorSchemaOf(tensors: TensorCollection): TensorSpec[] {
  return sortedTensorEntries(tensors).map(({ name, tensor }) => ({
    name,
    shape: [...tensor.shape],
    dtype: tensor.dtype as TensorSpec['dtype'],
  }));
}

/** SHA-256 and length of the canonical safetensors file of `tensors`, without building the file. */
export function canonicalPayloadHash(tensors: TensorCollection): { hash: string; bytes: number } {
  const { head, chunks, totalBytes } = layoutSafetensors(tensors);
  const hash = createHash('sha256').update(head);
  for (const chunk of chunks) hash.update(chunk);
  return { hash: `sha256:${hash.digest('hex')}`, bytes: totalBytes };
}

/**
 * Checks a recorded envelope against the stored update it names (see the top of this file):
 * returns why it does not bind the participant to those tensors, or undefined when it does.
 * `publicKeyHex` is the key of the participant's enrol record.
 */
export function checkRecordedEnvelope(
  recorded: RecordedEnvelope,
  tensors: TensorCollection,
  expected: { envelopeDigest: string; publicKeyHex: string },
): string | undefined {
  if (recorded.participant !== expected.publicKeyHex) {
    return `it is signed by key ${recorded.participant}, not the enrolled key ${expected.publicKeyHex}`;
  }
  const envelope: UpdateEnvelope = {
    version: recorded.version,
    federation: recorded.federation,
    round: recorded.round,
    participant: new Uint8Array(Buffer.from(recorded.participant, 'hex')),
    globalAdapterHash: recorded.globalAdapterHash,
    exampleCount: recorded.exampleCount,
    tensorSchema: tensorSchemaOf(tensors),
    payloadHash: recorded.payloadHash,
    payloadBytes: recorded.payloadBytes,
    chunkBytes: recorded.chunkBytes,
    chunkCount: recorded.chunkCount,
    createdAt: recorded.createdAt,
    ...(recorded.heldOut && { heldOut: recorded.heldOut }),
  };
  let digest: Uint8Array;
  try {
    digest = envelopeDigest(envelope);
  } catch (err) {
    return `it has no canonical encoding: ${(err as Error).message}`;
  }
  const id = `sha256:${Buffer.from(digest).toString('hex')}`;
  if (id !== expected.envelopeDigest) {
    return `its digest over the stored update's tensor schema is ${id}, not the recorded envelopeDigest ${expected.envelopeDigest}`;
  }
  const signature = new Uint8Array(Buffer.from(recorded.signature, 'hex'));
  if (!verifyDigest(envelope.participant, DOMAINS.envelope, digest, signature)) {
    return "its signature is not the participant's signature over the envelope";
  }
  const payload = canonicalPayloadHash(tensors);
  if (payload.hash !== recorded.payloadHash || payload.bytes !== recorded.payloadBytes) {
    return `the participant signed payload ${recorded.payloadHash} (${recorded.payloadBytes} bytes), but the stored update serialises to ${payload.hash} (${payload.bytes} bytes)`;
  }
  return undefined;
}
