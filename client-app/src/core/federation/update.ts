// (A secure round's masked input is built here too, buildMaskedUpdate, and never kept on disk.)
// A participant's update for one round: the trained LoRA tensors serialised as safetensors (F32,
// names in ascending UTF-8 order, no metadata), the signed envelope that commits to them, and the
// copy of both kept on disk until the coordinator acknowledges the commit, so that a dropped
// connection or a restarted client resumes the upload instead of training again.
//
//   <round dir>/upload/payload.safetensors   the plaintext update (never sent as is)
//   <round dir>/upload/envelope.msgpack      the signed envelope (packWire)
//   <round dir>/upload/meta.json             written last: the upload is complete on disk
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DEFAULT_CHUNK_BYTES,
  bytesEqual,
  chunkCountFor,
  maskedInputSchema,
  maskedInputTensors,
  packWire,
  serializeSafetensors,
  sha256Hash,
  signEnvelope,
  tensorFromF32,
  tensorToF32,
  unpackWire,
  validateEnvelope,
  type ContentHash,
  type HeldOutFigures,
  type Identity,
  type SignedEnvelope,
  type Tensor,
  type TensorSpec,
} from '@fedit/shared';
import { FederationError } from './errors.ts';
import { ensurePrivateDir, writePrivateFile } from './store.ts';

export interface PendingUpload {
  envelope: SignedEnvelope;
  payload: Uint8Array;
  /** Mean training loss of the round's local steps. */
  trainLoss: number;
}

interface PendingMeta {
  version: 1;
  round: number;
  trainLoss: number;
}

const utf8 = new TextEncoder();
const byUtf8 = (a: string, b: string) => Buffer.compare(utf8.encode(a), utf8.encode(b));

/**
 * Builds and signs the update of `tensors` (the trained LoRA tensors, any float dtype; sent as
 * F32) for `round`, trained from `globalAdapterHash` on `exampleCount` examples.
 */
export function buildUpdate(options: {
  identity: Identity;
  federation: string;
  round: number;
  globalAdapterHash: ContentHash;
  exampleCount: number;
  tensors: ReadonlyMap<string, Tensor>;
  trainLoss: number;
  /** What the participant measured of the global adapter on its held-out slice (held-out.ts). */
  heldOut?: HeldOutFigures;
  chunkBytes?: number;
  now?: number;
}): PendingUpload {
  const names = [...options.tensors.keys()].sort(byUtf8);
  const f32 = new Map<string, Tensor>();
  const tensorSchema: TensorSpec[] = [];
  for (const name of names) {
    const t = options.tensors.get(name)!;
    const tensor = t.dtype === 'F32' ? t : tensorFromF32(t.shape, tensorToF32(t), 'F32');
    f32.set(name, tensor);
    tensorSchema.push({ name, shape: [...tensor.shape], dtype: 'F32' });
  }
  const payload = serializeSafetensors(f32);
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const envelope = signEnvelope(
    {
      version: 1,
      federation: options.federation,
      round: options.round,
      participant: options.identity.sign.publicKey,
      globalAdapterHash: options.globalAdapterHash,
      exampleCount: options.exampleCount,
      tensorSchema,
      payloadHash: sha256Hash(payload),
      payloadBytes: payload.byteLength,
      chunkBytes,
      chunkCount: chunkCountFor(payload.byteLength, chunkBytes),
      createdAt: options.now ?? Date.now(),
      ...(options.heldOut && { heldOut: options.heldOut }),
    },
    options.identity,
  );
  return { envelope, payload, trainLoss: options.trainLoss };
}

/**
 * Builds and signs a secure round's masked input (secagg/masked-input.ts): the masked words as one
 * I32 tensor, exampleCount 1 (the real count is masked in the last word), no held-out figures. It
 * is sent from memory, never kept: without the round's secrets it could not be unmasked anyway.
 */
export function buildMaskedUpdate(options: {
  identity: Identity;
  federation: string;
  round: number;
  globalAdapterHash: ContentHash;
  words: Uint32Array;
  trainLoss: number;
  chunkBytes?: number;
  now?: number;
}): PendingUpload {
  const payload = serializeSafetensors(maskedInputTensors(options.words));
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const envelope = signEnvelope(
    {
      version: 1,
      federation: options.federation,
      round: options.round,
      participant: options.identity.sign.publicKey,
      globalAdapterHash: options.globalAdapterHash,
      exampleCount: 1,
      tensorSchema: maskedInputSchema(options.words.length),
      payloadHash: sha256Hash(payload),
      payloadBytes: payload.byteLength,
      chunkBytes,
      chunkCount: chunkCountFor(payload.byteLength, chunkBytes),
      createdAt: options.now ?? Date.now(),
    },
    options.identity,
  );
  return { envelope, payload, trainLoss: options.trainLoss };
}

const uploadDir = (roundDir: string) => join(roundDir, 'upload');

/** Keeps `pending` on disk (atomically; `meta.json` last) until the commit is acknowledged. */
export async function savePendingUpload(roundDir: string, pending: PendingUpload): Promise<void> {
  const dir = uploadDir(roundDir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(roundDir, { recursive: true, mode: 0o700 });
  await ensurePrivateDir(dir);
  await writePrivateFile(join(dir, 'payload.safetensors'), pending.payload);
  await writePrivateFile(join(dir, 'envelope.msgpack'), packWire(pending.envelope, 'envelope'));
  const meta: PendingMeta = { version: 1, round: pending.envelope.round, trainLoss: pending.trainLoss };
  await writePrivateFile(join(dir, 'meta.json'), JSON.stringify(meta) + '\n');
}

/**
 * The upload kept in `roundDir`, or undefined when there is none (or only a partial one, from a
 * crash while saving). A kept upload that does not check out (another identity or federation, a
 * payload that does not match its envelope) is an error naming the folder.
 */
export async function loadPendingUpload(
  roundDir: string,
  expect: { identity: Identity; federation: string; round: number },
): Promise<PendingUpload | undefined> {
  const dir = uploadDir(roundDir);
  let metaText: string;
  try {
    metaText = await readFile(join(dir, 'meta.json'), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const bad = (problem: string, cause?: unknown) =>
    new FederationError('FEDERATION_HOME', `the pending upload in ${dir} is unusable: ${problem}`, { cause });
  let meta: PendingMeta;
  let envelope: SignedEnvelope;
  let payload: Uint8Array;
  try {
    meta = JSON.parse(metaText) as PendingMeta;
    envelope = validateEnvelope(unpackWire(await readFile(join(dir, 'envelope.msgpack')), 'envelope'));
    payload = new Uint8Array(await readFile(join(dir, 'payload.safetensors')));
  } catch (error) {
    throw bad((error as Error).message, error);
  }
  if (meta.version !== 1 || meta.round !== envelope.round || typeof meta.trainLoss !== 'number') {
    throw bad('meta.json does not match the envelope');
  }
  if (envelope.round !== expect.round || envelope.federation !== expect.federation) {
    throw bad(`it is for federation ${envelope.federation} round ${envelope.round}`);
  }
  if (!bytesEqual(envelope.participant, expect.identity.sign.publicKey))
    throw bad('it was signed by another identity');
  if (payload.byteLength !== envelope.payloadBytes || sha256Hash(payload) !== envelope.payloadHash) {
    throw bad('the payload does not match the envelope');
  }
  return { envelope, payload, trainLoss: meta.trainLoss };
}

/** Forgets the upload kept in `roundDir`. */
export async function dropPendingUpload(roundDir: string): Promise<void> {
  await rm(uploadDir(roundDir), { recursive: true, force: true });
}
