// The admission rules of update:commit (the overview is in admission.ts): the assembled payload is
// the signed one, a canonical safetensors file, whose tensors are exactly the announced schema,
// finite, and within the federation's norm bound of the global adapter. Pure, like admission.ts;
// the verifier holds every stored update to the tensor rules (update-rules.ts).

import { checkFrozenA } from '../aggregation/aggregate.ts';
import { AggregationError } from '../aggregation/aggregation-error.ts';
import { createHash } from 'node:crypto';
import type { TensorSpec, UpdateEnvelope } from '../protocol/messages.ts';
import { updateNorm } from '../aggregation/norm.ts';
import { globalAtRank, updateRankOf } from '../aggregation/update-rank.ts';
import { layoutSafetensors, parseSafetensors } from '../tensors/safetensors.ts';
import { tensorToF32, type Tensor } from '../tensors/tensor.ts';
import { refusal, refuse, type Admission, type Refusal } from './admission.ts';

/**
 * The assembled plaintext of an upload against its signed envelope: its size and SHA-256 (the one
 * hash of the payload), then a safetensors file in the canonical layout. The blob store keeps the
 * canonical file of the tensors, and the audit checks the participant's signed payloadHash against
 * exactly that file (envelope-record.ts): any other layout is refused. Admitted: the tensors
 * (views into `payload`).
 */
export function admitPayload(
  envelope: Pick<UpdateEnvelope, 'payloadHash' | 'payloadBytes'>,
  payload: Uint8Array,
  source = 'update',
): Admission<Map<string, Tensor>> {
  if (
    payload.byteLength !== envelope.payloadBytes ||
    `sha256:${createHash('sha256').update(payload).digest('hex')}` !== envelope.payloadHash
  )
    return refuse('UPDATE_PAYLOAD', 'the assembled update does not match envelope.payloadHash', 'payload');
  let tensors: Map<string, Tensor>;
  try {
    tensors = parseSafetensors(payload, source).tensors;
  } catch (err) {
    return refuse(
      'UPDATE_FORMAT',
      `the update is not a valid safetensors file: ${(err as Error).message}`,
      'payload',
    );
  }
  if (!isCanonicalLayout(payload, tensors))
    return refuse(
      'UPDATE_FORMAT',
      'the update is not a canonical safetensors file (names ascending, no metadata)',
      'payload',
    );
  return { ok: true, value: tensors };
}

/**
 * Whether `payload` is byte for byte the canonical file of `tensors` (its own tensors), without
 * hashing or copying it again: the canonical header fixes every data offset, the tensors are read
 * from those offsets of `payload`, so equal headers and equal lengths mean equal files.
 */
function isCanonicalLayout(payload: Uint8Array, tensors: ReadonlyMap<string, Tensor>): boolean {
  let head: Uint8Array;
  let totalBytes: number;
  try {
    ({ head, totalBytes } = layoutSafetensors(tensors));
  } catch {
    return false; // tensors no canonical file can hold (e.g. a header too large once rewritten)
  }
  return (
    totalBytes === payload.byteLength && Buffer.compare(head, payload.subarray(0, head.byteLength)) === 0
  );
}

export interface TensorsContext {
  /** The tensors the update must hold, exactly: names, shapes and dtypes. */
  schema: readonly TensorSpec[];
  /** The global adapter the update moves from, as float32 values by name. */
  global: ReadonlyMap<string, Float32Array>;
  maxUpdateNorm: number;
  /** FFA-LoRA: every lora_A must equal the global adapter's, bit for bit. */
  frozenA?: boolean;
  /**
   * The global adapter's shapes: needed to measure an update of a lower LoRA rank (which the
   * envelope's admission let through) from the global adapter truncated to its rank.
   */
  globalSchema?: ReadonlyMap<string, readonly number[]>;
}

/**
 * An update's tensors: exactly the schema, every value finite (admitTensorValues), and the L2
 * distance from the global adapter (at the update's rank, trainedFrom) within the federation's
 * bound (checkUpdateNorm). Admitted: the values as float32, by name.
 */
export function admitUpdateTensors(
  context: TensorsContext,
  tensors: ReadonlyMap<string, Tensor>,
): Admission<Map<string, Float32Array>> {
  const values = admitTensorValues(context.schema, tensors);
  if (!values.ok) return values;
  const reference = trainedFrom(context.global, context.globalSchema, context.schema);
  const norm = checkUpdateNorm(values.value, reference, context.maxUpdateNorm);
  if (norm) return { ok: false, refusal: norm };
  if (context.frozenA) {
    try {
      checkFrozenA(values.value, reference);
    } catch (err) {
      if (!(err instanceof AggregationError)) throw err;
      return refuse('UPDATE_FROZEN', err.message, 'payload');
    }
  }
  return values;
}

/** An update's tensors are exactly `schema` (names, shapes, dtypes), every value finite. Admitted: float32 values. */
export function admitTensorValues(
  schema: readonly TensorSpec[],
  tensors: ReadonlyMap<string, Tensor>,
): Admission<Map<string, Float32Array>> {
  const values = new Map<string, Float32Array>();
  for (const spec of schema) {
    const t = tensors.get(spec.name);
    if (!t || t.shape.join(',') !== spec.shape.join(',') || t.dtype !== spec.dtype)
      return refuse('UPDATE_SCHEMA', `tensor ${spec.name} differs from the envelope's schema`, 'payload');
    const v = tensorToF32(t);
    const bad = firstNonFinite(v);
    if (bad >= 0)
      return refuse(
        'UPDATE_NOT_FINITE',
        `tensor ${spec.name} has a non-finite value at index ${bad}`,
        'payload',
      );
    values.set(spec.name, v);
  }
  if (tensors.size !== schema.length)
    return refuse('UPDATE_SCHEMA', 'the update has tensors the envelope does not announce', 'payload');
  return { ok: true, value: values };
}

/**
 * What an update of tensors `announced` trained from: the global adapter, or its truncation to the
 * update's lower LoRA rank (globalAtRank) when its shapes are those of one. The shapes were
 * admitted already (checkAnnouncedSchema); `globalSchema` is needed only for a lower rank.
 */
export function trainedFrom(
  global: ReadonlyMap<string, Float32Array>,
  globalSchema: ReadonlyMap<string, readonly number[]> | undefined,
  announced: readonly TensorSpec[],
): ReadonlyMap<string, Float32Array> {
  if (!globalSchema) return global;
  const shapes = new Map(announced.map((t) => [t.name, t.shape]));
  // Whether the rule takes this rank was checked when the envelope was admitted.
  const rank = updateRankOf(globalSchema, shapes);
  return globalAtRank(global, globalSchema, rank);
}

/** The update's L2 distance from the global adapter is within the federation's bound; undefined when it is. */
export function checkUpdateNorm(
  values: ReadonlyMap<string, Float32Array>,
  global: ReadonlyMap<string, Float32Array>,
  maxUpdateNorm: number,
): Refusal | undefined {
  const norm = updateNorm(values, global);
  if (norm <= maxUpdateNorm) return undefined;
  return refusal(
    'UPDATE_NORM',
    `the update moves the adapter by ${norm.toFixed(3)} (L2), above the federation's bound ${maxUpdateNorm}`,
    'payload',
  );
}

/** The index of the first NaN or infinity in `values`, or -1 (a plain loop: this is the hot path). */
function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}
