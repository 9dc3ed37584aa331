// What an update must look like to be aggregated: the adapter's tensor names and shapes. The
// schema comes from the global adapter of the round, so every update is checked against the
// tensors it is meant to replace.

import { sortedTensorEntries, type TensorCollection } from '../tensors/tensor-entries.ts';
import { numel, tensorFromF32, tensorToF32, type Tensor } from '../tensors/tensor.ts';
import { AggregationError } from './aggregation-error.ts';

/** Tensor name -> shape, in ascending order of the names' UTF-8 bytes (hashTensors' order). */
export type AdapterSchema = ReadonlyMap<string, readonly number[]>;

/** An adapter's (or an update's) values by tensor name, decoded to Float32. */
export type TensorValues = ReadonlyMap<string, Float32Array>;

/** The schema of a set of tensors: their names and shapes, in canonical name order. */
export function adapterSchema(tensors: TensorCollection): AdapterSchema {
  return new Map(sortedTensorEntries(tensors).map(({ name, tensor }) => [name, [...tensor.shape]]));
}

/** Decodes every tensor to Float32 (F32, F16, BF16 or F64), keeping the canonical name order. */
export function tensorValues(tensors: TensorCollection): Map<string, Float32Array> {
  return new Map(sortedTensorEntries(tensors).map(({ name, tensor }) => [name, tensorToF32(tensor)]));
}

/**
 * The F32 tensors that `values` are under `schema`, as stored in the blob store and hashed with
 * hashTensors. Throws like validateUpdate when they do not fit the schema.
 */
export function tensorsFromValues(schema: AdapterSchema, values: TensorValues): Map<string, Tensor> {
  validateUpdate(schema, values, { checkFinite: false });
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of schema) tensors.set(name, tensorFromF32(shape, values.get(name)!, 'F32'));
  return tensors;
}

/**
 * Throws AggregationError unless `update` has exactly the schema's tensor names, each with the
 * number of values its shape calls for, all finite. `label` (e.g. a participant id) starts the
 * message; the tensor name is always in it.
 */
export function validateUpdate(
  schema: AdapterSchema,
  update: TensorValues,
  options: { label?: string; checkFinite?: boolean } = {},
): void {
  const prefix = options.label === undefined ? 'update' : options.label;
  for (const name of update.keys()) {
    if (!schema.has(name)) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `${prefix}: has tensor ${name}, which the global adapter does not have`,
      );
    }
  }
  for (const [name, shape] of schema) {
    const values = update.get(name);
    if (values === undefined) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `${prefix}: lacks tensor ${name} [${shape.join(', ')}] of the global adapter`,
      );
    }
    if (!(values instanceof Float32Array)) {
      throw new AggregationError('AGGREGATION_SHAPE', `${prefix}: tensor ${name} is not a Float32Array`);
    }
    const expected = numel(shape);
    if (values.length !== expected) {
      throw new AggregationError(
        'AGGREGATION_SHAPE',
        `${prefix}: tensor ${name} has ${values.length} values; its shape [${shape.join(', ')}] needs ${expected}`,
      );
    }
    if (options.checkFinite !== false) {
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i])) {
          throw new AggregationError(
            'AGGREGATION_NOT_FINITE',
            `${prefix}: tensor ${name} holds ${values[i]} at flat index ${i}`,
          );
        }
      }
    }
  }
}
