// The update upload's messages (client → server): the envelope a participant signs before sending
// an update (its tensor schema in one order for everyone, its chunk count matching its sizes), and
// update:begin / update:chunk / update:commit with their results. Declared like every message
// (messages.ts, whose event tables name them); the sequence is upload.ts's, the envelope's digest
// and signature envelope.ts's.
import { compareUtf8 } from '../aggregation/rule.ts';
import { SEAL_OVERHEAD_BYTES } from '../crypto/seal.ts';
import {
  bytes,
  fail,
  int,
  list,
  literal,
  object,
  oneOf,
  optional,
  refine,
  rooted,
  text,
  type Infer,
} from '../schema/schema.ts';
import { FLOAT_DTYPES } from '../tensors/dtype.ts';
import { heldOutFigures } from './held-out-figures.ts';
import { SECAGG_MASKED_TENSOR, isMaskedInputSchema } from '../secagg/masked-input.ts';
import {
  MAX_CHUNK_BYTES,
  MAX_CHUNK_COUNT,
  MAX_EXAMPLE_COUNT,
  MAX_PAYLOAD_BYTES,
  MAX_ROUND,
  MAX_TENSOR_DIM,
  MAX_TENSOR_NAME_LENGTH,
  MAX_TENSOR_RANK,
  MAX_TENSORS,
  MIN_CHUNK_BYTES,
  chunkCountFor,
} from './limits.ts';

import { chunkIndex, contentHash, federationId, signKey, signature, timestamp, uploadId } from './fields.ts';

/**
 * One tensor of an update, as the envelope announces it. I32 only as a secure round's masked input
 * (secagg/masked-input.ts: one tensor SECAGG_MASKED_TENSOR of uint32 words), checked below.
 */
export const tensorSpec = object({
  name: text(1, MAX_TENSOR_NAME_LENGTH),
  shape: list(int(1, MAX_TENSOR_DIM), 0, MAX_TENSOR_RANK),
  dtype: oneOf([...FLOAT_DTYPES, 'I32'] as const),
});
export type TensorSpec = Infer<typeof tensorSpec>;

/** Tensors of an update, names strictly ascending in UTF-8 byte order. */
const tensorSchema = refine(list(tensorSpec, 1, MAX_TENSORS), (specs, path) => {
  // A masked input is one I32 vector of that name, and an update never holds an I32 tensor: the
  // coordinator reads the kind of upload from the signed schema, never from a guess.
  const masked = specs.findIndex((s) => s.dtype === 'I32');
  if (masked >= 0 && !isMaskedInputSchema(specs)) {
    const at = `${path}[${masked}]`;
    fail(
      'INCONSISTENT',
      at,
      `${at} is I32, which only a secure round's masked input may be: exactly one tensor ${SECAGG_MASKED_TENSOR}`,
    );
  }
  if (masked >= 0 && specs[0].shape.length !== 1) {
    fail('INCONSISTENT', `${path}[0].shape`, `${path}[0].shape must be [L]: a masked input is a vector`);
  }
  // Unique, and one order for everyone (hashTensors' order), so the schema can be compared with
  // the global adapter's tensor list entry by entry.
  for (let i = 1; i < specs.length; i++) {
    if (compareUtf8(specs[i - 1].name, specs[i].name) >= 0) {
      const at = `${path}[${i}].name`;
      fail(
        'INCONSISTENT',
        at,
        `${at} ${JSON.stringify(specs[i].name)} must come after the previous tensor's name: names must be unique and in ascending (UTF-8 byte) order`,
      );
    }
  }
});

/** The fields of what a participant commits to before sending an update; see envelope.ts. */
const envelopeShape = {
  version: literal(1, {
    kind: 'RANGE',
    hint: 'the client and coordinator run incompatible fedit versions',
  }),
  federation: federationId,
  round: int(0, MAX_ROUND),
  /** The participant's Ed25519 public key. */
  participant: signKey,
  /** The global adapter the update was trained from. */
  globalAdapterHash: contentHash,
  exampleCount: int(1, MAX_EXAMPLE_COUNT),
  tensorSchema,
  /** SHA-256 of the plaintext serialised update. */
  payloadHash: contentHash,
  payloadBytes: int(1, MAX_PAYLOAD_BYTES),
  /** Plaintext bytes per chunk; the last chunk may be shorter. */
  chunkBytes: int(MIN_CHUNK_BYTES, MAX_CHUNK_BYTES),
  chunkCount: int(1, MAX_CHUNK_COUNT),
  /** When the participant made the envelope, ms since the epoch. */
  createdAt: timestamp,
  /** Optional: the participant's held-out figures for globalAdapterHash (signed with the rest). */
  heldOut: optional(heldOutFigures),
};

function checkChunkCount(e: { payloadBytes: number; chunkBytes: number; chunkCount: number }, path: string) {
  const expected = chunkCountFor(e.payloadBytes, e.chunkBytes);
  if (e.chunkCount !== expected) {
    fail(
      'INCONSISTENT',
      `${path}.chunkCount`,
      `${path}.chunkCount is ${e.chunkCount}, but ${e.payloadBytes} bytes in chunks of ${e.chunkBytes} make ${expected}`,
    );
  }
}

/** An envelope before it is signed (no `signature` field allowed). */
export const updateEnvelope = refine(object(envelopeShape), checkChunkCount);
export type UpdateEnvelope = Infer<typeof updateEnvelope>;

/** A signed envelope: structure only, the signature is checked by verifyEnvelope. */
export const signedEnvelope = refine(
  object({
    ...envelopeShape,
    /** Signature of envelopeDigest under 'fedit/envelope/v1'. */
    signature,
  }),
  checkChunkCount,
);
export type SignedEnvelope = Infer<typeof signedEnvelope>;

/** Client → server: start (or resume) an upload. The envelope's errors are named `envelope.*`, as
 * everywhere else it appears. */
export const updateBegin = object({ envelope: rooted('envelope', signedEnvelope) });
export type UpdateBegin = Infer<typeof updateBegin>;

export const updateBeginResult = object({
  uploadId,
  /** The first chunk index the coordinator does not hold yet (chunkCount when all are there). */
  resumeFrom: int(0, MAX_CHUNK_COUNT),
});
export type UpdateBeginResult = Infer<typeof updateBeginResult>;

/** Client → server: one sealed chunk. */
export const updateChunk = object({
  uploadId,
  index: chunkIndex,
  /** sealChunk output: ciphertext || 16-byte tag. */
  data: bytes(SEAL_OVERHEAD_BYTES, MAX_CHUNK_BYTES + SEAL_OVERHEAD_BYTES),
  /** SHA-256 of `data`, so corruption is told apart from tampering before decryption. */
  sha256: bytes(32),
});
export type UpdateChunk = Infer<typeof updateChunk>;

export const updateChunkResult = object({
  /** Chunks the coordinator now holds for this upload. */
  received: int(0, MAX_CHUNK_COUNT),
});
export type UpdateChunkResult = Infer<typeof updateChunkResult>;

/** Client → server: every chunk is sent; verify and count the update. */
export const updateCommit = object({ uploadId });
export type UpdateCommit = Infer<typeof updateCommit>;

export const updateCommitResult = object({});
export type UpdateCommitResult = Infer<typeof updateCommitResult>;
