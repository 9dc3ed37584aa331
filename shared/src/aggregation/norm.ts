import { AggregationError } from './aggregation-error.ts';
import { compareUtf8 } from './rule.ts';
import type { TensorValues } from './schema.ts';

/**
 * The L2 norm of `update - reference` over all tensors (of `update` alone without a reference):
 * what the coordinator compares with a federation's max-update-norm. Squares are summed in
 * binary64, tensors in ascending UTF-8 order of their names, elements in order, so the value is
 * reproducible. Throws AggregationError naming the tensor when the two do not match.
 */
export function updateNorm(update: TensorValues, reference?: TensorValues): number {
  if (reference) {
    for (const name of reference.keys()) {
      if (!update.has(name)) {
        throw new AggregationError('AGGREGATION_TENSOR_NAME', `update lacks tensor ${name} of the reference`);
      }
    }
  }
  let squares = 0;
  for (const name of [...update.keys()].sort(compareUtf8)) {
    const values = update.get(name)!;
    const base = reference?.get(name);
    if (reference && base === undefined) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `update has tensor ${name}, which the reference does not have`,
      );
    }
    if (base && base.length !== values.length) {
      throw new AggregationError(
        'AGGREGATION_SHAPE',
        `update's tensor ${name} has ${values.length} values, the reference's ${base.length}`,
      );
    }
    for (let i = 0; i < values.length; i++) {
      const d = base ? values[i] - base[i] : values[i];
      squares += d * d;
    }
  }
  return Math.sqrt(squares);
}
