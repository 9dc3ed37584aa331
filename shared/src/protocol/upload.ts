// The upload sequence of one update, written once for everyone who sends updates (the participant,
// the federation benchmark, the coordinator tests' honest peer):
//
//   'update:begin' {envelope}        -> {uploadId, resumeFrom}: the coordinator says where to resume
//   'update:chunk' {sealed chunk i}  for i = resumeFrom .. chunkCount-1
//   'update:commit' {uploadId}       -> the update counts
//
// One call is one pass. What to do when a pass fails (a dropped connection, a chunk damaged in
// transit) is the caller's policy: calling again with the same envelope resumes from the first
// chunk the coordinator lacks, because 'update:begin' answers with it.
//
// The transport is a request function typed by messages.ts, so that shared/ stays free of
// socket.io: it returns the acknowledgement as it arrived (ok or a refusal) or throws when no
// answer came. A refusal ends the pass and is returned, not thrown, so that a caller that wants
// to look at it (a test) can, and one that throws on refusals (FederationConnection) may.
import { sha256 } from '../crypto/digest.ts';
import { participantUploadKey, sealChunk, type UploadKey } from '../crypto/seal.ts';
import type { KeyPair } from '../crypto/identity.ts';
import { FeditError } from '../errors.ts';
import { envelopeDigest, envelopeId } from './envelope.ts';
import type {
  ClientPayload,
  ClientToServerEvents,
  SignedEnvelope,
  UpdateBeginResult,
  UpdateChunk,
  UpdateCommitResult,
  UploadId,
  WireError,
} from './messages.ts';

export type UploadEvent = 'update:begin' | 'update:chunk' | 'update:commit';

/** The acknowledgement of `E` as messages.ts declares it: `{ ok: true, ...result }` or a refusal. */
export type UploadAck<E extends UploadEvent> = Parameters<Parameters<ClientToServerEvents[E]>[1]>[0];

/** Sends one upload message and resolves with its acknowledgement; throws when none arrives. */
export type UploadRequest = <E extends UploadEvent>(
  event: E,
  payload: ClientPayload<E>,
) => Promise<UploadAck<E>>;

/** What is sent: the signed envelope, the plaintext payload it commits to, and the sealing key. */
export interface SealedUpload {
  envelope: SignedEnvelope;
  payload: Uint8Array;
  key: UploadKey;
}

export type UploadOutcome =
  | { kind: 'committed'; begin: UpdateBeginResult; commit: UpdateCommitResult }
  /** The coordinator refused `event` (`index`: the chunk, for 'update:chunk'). */
  | { kind: 'refused'; event: UploadEvent; error: WireError; index?: number }
  /** Stopped before chunk `next` (`stopBefore` reached, or `signal` aborted); nothing committed. */
  | { kind: 'paused'; begin: UpdateBeginResult; next: number };

export interface UploadPassOptions {
  /** Send chunks only up to this index (exclusive) and pause there (default: all, then commit). */
  stopBefore?: number;
  /** Checked before every chunk: an aborted signal pauses the pass. */
  signal?: AbortSignal;
  /** Called after each chunk is acknowledged, with its index and sealed size. */
  onChunk?: (index: number, sealedBytes: number) => void;
}

/** The upload of `payload` under `envelope`, sealed with the participant's and coordinator's box keys. */
export function sealedUpload(
  envelope: SignedEnvelope,
  payload: Uint8Array,
  participantBox: KeyPair,
  coordinatorBoxPublicKey: Uint8Array,
): SealedUpload {
  const key = participantUploadKey(
    participantBox,
    coordinatorBoxPublicKey,
    envelopeDigest(envelope),
    envelope.chunkCount,
  );
  return { envelope, payload, key };
}

/** The 'update:chunk' message of chunk `index`: its slice of the payload, sealed, with its SHA-256. */
export function sealedChunkMessage(upload: SealedUpload, uploadId: UploadId, index: number): UpdateChunk {
  const { envelope, payload, key } = upload;
  const start = index * envelope.chunkBytes;
  const data = sealChunk(key, index, payload.subarray(start, start + envelope.chunkBytes));
  return { uploadId, index, data, sha256: sha256(data) };
}

/**
 * One pass of the upload sequence: begin, the chunks from where the coordinator says to resume,
 * commit. Throws UPLOAD_ID_MISMATCH when the coordinator names the upload by another id than the
 * envelope's (it would be counting some other update), and whatever `request` throws.
 */
export async function uploadPass(
  request: UploadRequest,
  upload: SealedUpload,
  options: UploadPassOptions = {},
): Promise<UploadOutcome> {
  const { envelope } = upload;
  const begin = await request('update:begin', { envelope });
  if (!begin.ok) return { kind: 'refused', event: 'update:begin', error: begin.error };
  const uploadId = envelopeId(envelope);
  if (begin.uploadId !== uploadId) {
    throw new FeditError(
      'UPLOAD_ID_MISMATCH',
      `the coordinator named the upload ${begin.uploadId}, but its envelope id is ${uploadId}`,
    );
  }
  const started = { uploadId: begin.uploadId, resumeFrom: begin.resumeFrom };
  const end = Math.min(options.stopBefore ?? envelope.chunkCount, envelope.chunkCount);
  for (let index = begin.resumeFrom; index < end; index++) {
    if (options.signal?.aborted) return { kind: 'paused', begin: started, next: index };
    const chunk = sealedChunkMessage(upload, uploadId, index);
    const ack = await request('update:chunk', chunk);
    if (!ack.ok) return { kind: 'refused', event: 'update:chunk', error: ack.error, index };
    options.onChunk?.(index, chunk.data.byteLength);
  }
  if (end < envelope.chunkCount) return { kind: 'paused', begin: started, next: end };
  const commit = await request('update:commit', { uploadId });
  if (!commit.ok) return { kind: 'refused', event: 'update:commit', error: commit.error };
  const { ok: _ok, ...result } = commit;
  return { kind: 'committed', begin: started, commit: result };
}
