// The vector a secure round encodes: the adapter's elements in schema order (tensor names
// ascending by UTF-8 bytes, each tensor's elements in index order), one word each, then the
// weight word (fixed-point.ts). Flattening and its inverse live here once for the participant
// (which encodes its delta) and the sum path (which decodes the mean back into tensors).

import { compareUtf8 } from '../../aggregation/rule.ts';
import type { AdapterSchema, TensorValues } from '../../aggregation/schema.ts';
import { numel } from '../../tensors/tensor.ts';
import { SecAggError } from '../secagg-error.ts';

/** The values of `delta`, tensors in ascending name order, concatenated. */
export function flattenDelta(delta: TensorValues): Float32Array {
  const names = [...delta.keys()].sort(compareUtf8);
  let length = 0;
  for (const name of names) length += delta.get(name)!.length;
  const flat = new Float32Array(length);
  let at = 0;
  for (const name of names) {
    flat.set(delta.get(name)!, at);
    at += delta.get(name)!.length;
  }
  return flat;
}

/** Elements of the adapter under `schema`: the secure vector is this plus one word long. */
export function schemaLength(schema: AdapterSchema): number {
  let length = 0;
  for (const shape of schema.values()) length += numel([...shape]);
  return length;
}

/** `flat` cut back into the schema's tensors (names ascending), as binary64 or float32 views. */
export function unflatten<T extends Float32Array | Float64Array>(
  schema: AdapterSchema,
  flat: T,
): Map<string, T> {
  if (flat.length !== schemaLength(schema))
    throw new SecAggError(
      'SECAGG_INPUT',
      `the vector has ${flat.length} values, the adapter ${schemaLength(schema)}`,
    );
  const out = new Map<string, T>();
  let at = 0;
  for (const name of [...schema.keys()].sort(compareUtf8)) {
    const n = numel([...schema.get(name)!]);
    out.set(name, flat.subarray(at, at + n) as T);
    at += n;
  }
  return out;
}
