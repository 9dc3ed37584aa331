// The upload sequence (uploadPass) against a receiver that does what the coordinator does with
// each message, with the real crypto: verify the envelope, open every chunk with the coordinator's
// key, say where to resume, and on commit check the reassembled payload against the envelope.
import { randomBytes } from 'node:crypto';
import test from 'ava';
import {
  MIN_CHUNK_BYTES,
  coordinatorUploadKey,
  generateIdentity,
  openChunk,
  sealedUpload,
  sha256Hash,
  uploadPass,
  verifyEnvelope,
  type ClientPayload,
  type SignedEnvelope,
  type UpdateChunk,
  type UploadAck,
  type UploadEvent,
  type UploadRequest,
} from '@fedit/shared';
import { signedPayloadEnvelope } from './helpers/envelopes.ts';

const participant = generateIdentity();
const coordinator = generateIdentity();

function makeUpload(chunks = 4) {
  const chunkBytes = MIN_CHUNK_BYTES;
  const payload = new Uint8Array(randomBytes((chunks - 1) * chunkBytes + 77));
  const envelope = signedPayloadEnvelope(participant, payload, { round: 3, chunkBytes });
  return sealedUpload(envelope, payload, participant.box, coordinator.box.publicKey);
}

/** The coordinator's side of one upload, message by message, keeping what it received. */
class Receiver {
  readonly chunks = new Map<number, Uint8Array>();
  readonly log: string[] = [];
  committed: Uint8Array | undefined;
  /** A refusal to answer `event` with, once. */
  refuse: UploadEvent | undefined;
  /** The upload id 'update:begin' answers with (default: the envelope's). */
  answerId: string | undefined;
  #envelope: SignedEnvelope | undefined;

  request: UploadRequest = async <E extends UploadEvent>(event: E, payload: ClientPayload<E>) => {
    this.log.push(event === 'update:chunk' ? `chunk ${(payload as UpdateChunk).index}` : event);
    if (this.refuse === event) {
      this.refuse = undefined;
      return { ok: false, error: { code: 'CHUNK_CORRUPT', message: 'refused by the test' } };
    }
    return this.#answer(event, payload) as UploadAck<E>;
  };

  #answer(event: UploadEvent, payload: unknown): unknown {
    if (event === 'update:begin') {
      const { envelope, id } = verifyEnvelope((payload as { envelope: unknown }).envelope);
      this.#envelope = envelope as SignedEnvelope;
      let resumeFrom = 0;
      while (this.chunks.has(resumeFrom)) resumeFrom++;
      return { ok: true, uploadId: this.answerId ?? id, resumeFrom };
    }
    const { envelope, digest } = verifyEnvelope(this.#envelope);
    const key = coordinatorUploadKey(coordinator.box, participant.box.publicKey, digest, envelope.chunkCount);
    if (event === 'update:chunk') {
      const { index, data } = payload as UpdateChunk;
      this.chunks.set(index, openChunk(key, index, data));
      return { ok: true, received: this.chunks.size };
    }
    const parts = Array.from({ length: envelope.chunkCount }, (_, i) => this.chunks.get(i)!);
    this.committed = Buffer.concat(parts);
    return { ok: true };
  }
}

test('an upload sends begin, every chunk sealed in order, then commit, and the payload arrives intact', async (t) => {
  const upload = makeUpload(4);
  const receiver = new Receiver();
  const sizes: number[] = [];
  const outcome = await uploadPass(receiver.request, upload, { onChunk: (_, bytes) => sizes.push(bytes) });
  t.is(outcome.kind, 'committed');
  t.deepEqual(receiver.log, ['update:begin', 'chunk 0', 'chunk 1', 'chunk 2', 'chunk 3', 'update:commit']);
  t.is(sha256Hash(receiver.committed!), upload.envelope.payloadHash);
  t.is(sizes.length, 4);
});

test('a second pass resumes from the first chunk the coordinator lacks', async (t) => {
  const upload = makeUpload(5);
  const receiver = new Receiver();
  const first = await uploadPass(receiver.request, upload, { stopBefore: 3 });
  t.like(first, { kind: 'paused', next: 3 });
  t.deepEqual(receiver.log, ['update:begin', 'chunk 0', 'chunk 1', 'chunk 2']);
  t.is(receiver.committed, undefined);

  receiver.log.length = 0;
  const second = await uploadPass(receiver.request, upload);
  t.like(second, { kind: 'committed', begin: { resumeFrom: 3 } });
  t.deepEqual(receiver.log, ['update:begin', 'chunk 3', 'chunk 4', 'update:commit']);
  t.is(sha256Hash(receiver.committed!), upload.envelope.payloadHash);
});

test('an aborted signal pauses the pass before the next chunk, and nothing is committed', async (t) => {
  const upload = makeUpload(4);
  const receiver = new Receiver();
  const controller = new AbortController();
  const outcome = await uploadPass(receiver.request, upload, {
    signal: controller.signal,
    onChunk: (index) => index === 1 && controller.abort(),
  });
  t.like(outcome, { kind: 'paused', next: 2 });
  t.is(receiver.committed, undefined);
});

test('a refused chunk ends the pass with the refusal and its index, without a commit', async (t) => {
  const upload = makeUpload(3);
  const receiver = new Receiver();
  receiver.refuse = 'update:chunk';
  const outcome = await uploadPass(receiver.request, upload);
  t.like(outcome, { kind: 'refused', event: 'update:chunk', index: 0, error: { code: 'CHUNK_CORRUPT' } });
  t.deepEqual(receiver.log, ['update:begin', 'chunk 0']);
});

test('a coordinator that names the upload by another id is not sent a chunk', async (t) => {
  const upload = makeUpload(2);
  const receiver = new Receiver();
  receiver.answerId = sha256Hash(new Uint8Array([1]));
  await t.throwsAsync(uploadPass(receiver.request, upload), { code: 'UPLOAD_ID_MISMATCH' });
  t.deepEqual(receiver.log, ['update:begin']);
});
