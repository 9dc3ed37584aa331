// Norm clipping toward the global adapter, with a bound set by the round itself: the step of the
// plaintext round pipeline that stops one participant's oversized update (scaled x1000, say) from
// dragging the global adapter, before a combiner (weighted mean, median, trimmed mean, Krum) sees it.
//
// Norm bounding is Sun et al. 2019, "Can You Really Backdoor Federated Learning?": every update's
// difference from the global adapter is scaled down to an L2 norm of at most a bound. A fixed bound
// has to be guessed per model and learning rate (fedit's old max-update-norm of 1000 let a x1000
// update through, as honest updates have norm ~0.65); here the bound adapts to each round, as a
// multiple of the median of that round's update norms, in the spirit of Andrew et al. 2021
// ("Differentially Private Learning with Adaptive Clipping", a quantile-tracking bound) but
// computed from the round's own norms, so an auditor needs nothing but the round's updates. The
// median cannot be moved past the honest norms while fewer than half the updates are hostile.
//
// Arithmetic, fixed to the bit so that `fedit audit` (or numpy) recomputes it:
//
//   norm_k  = updateNorm(update_k, global)             (norm.ts: sqrt of the binary64 sum of squared
//                                                       differences, tensors in UTF-8 name order)
//   sorted  = the K norms in ascending order
//   median  = sorted[(K-1)/2]                          K odd
//           = (sorted[K/2-1] + sorted[K/2]) / 2        K even: binary64 sum, then binary64 halving
//   bound   = multiplier * median                      binary64 product
//   scale_k = 1                                        norm_k == 0
//           = min(1, bound / norm_k)                   otherwise, binary64 quotient
//   out_k[i] = g[i] + scale_k * (x_k[i] - g[i])        binary64, each operation rounded to nearest
//                                                       even, no fused multiply-add; g and x_k are
//                                                       float32 values widened exactly
//   out_k[i] = x_k[i] widened                          when scale_k == 1 (not recomputed, so an
//                                                       unclipped update passes through bit-exact)
//
// In numpy: bound = multiplier * np.median(norms) (np.median averages the two middle values the
// same way); out = g64 + scale * (x64 - g64) unless scale == 1.
//
// The clipped values stay binary64: rounding them back to float32 here would add an error the
// combiner then averages; the round's result is rounded to float32 once, at its end.

import { AggregationError } from './aggregation-error.ts';
import { compareUtf8 } from './rule.ts';
import type { TensorValues } from './schema.ts';

/** binary64 values of one update, by tensor name (schema order). */
export type Values64 = ReadonlyMap<string, Float64Array>;

/**
 * The adaptive bound of a round: multiplier x median of the round's update norms (odd K: the
 * middle value; even K: the mean of the two middle values, in binary64). Throws
 * AggregationError('AGGREGATION_CONFIG') for no norms, a negative or non-finite norm, or a
 * multiplier that is not a finite positive number.
 */
export function adaptiveClipBound(norms: readonly number[], multiplier: number): number {
  if (!Number.isFinite(multiplier) || multiplier <= 0) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `clip multiplier ${multiplier} is not a finite positive number`,
    );
  }
  if (norms.length === 0) {
    throw new AggregationError(
      'AGGREGATION_EMPTY',
      'no update norms: a round with no updates has no clip bound',
    );
  }
  norms.forEach((norm, k) => checkNorm(norm, `norms[${k}]`));
  return multiplier * medianOfSorted(Float64Array.from(norms).sort());
}

/** min(1, bound / norm) in binary64; 1 when norm is 0. */
export function clipScale(norm: number, bound: number): number {
  checkNorm(norm, 'norm');
  checkNorm(bound, 'bound');
  if (norm === 0) return 1;
  return Math.min(1, bound / norm);
}

/**
 * global + scale * (update - global), element by element in binary64 (no FMA); when scale === 1
 * the update's values are returned widened unchanged (not recomputed). Tensors come out in
 * ascending UTF-8 order of their names (schema order). Throws AggregationError naming the tensor
 * when the two do not have the same tensors and lengths or hold a non-finite value, and
 * AGGREGATION_CONFIG for a scale outside [0, 1].
 */
export function clipToward(
  update: TensorValues,
  global: TensorValues,
  scale: number,
): Map<string, Float64Array> {
  if (!(scale >= 0 && scale <= 1)) {
    throw new AggregationError('AGGREGATION_CONFIG', `clip scale ${scale} is not in [0, 1]`);
  }
  const names = matchingTensorNames(update, global);
  const out = new Map<string, Float64Array>();
  for (const name of names) {
    const x = update.get(name)!;
    const g = global.get(name)!;
    checkFinite(x, `update: tensor ${name}`);
    checkFinite(g, `global adapter: tensor ${name}`);
    if (scale === 1) {
      out.set(name, Float64Array.from(x));
      continue;
    }
    const clipped = new Float64Array(x.length);
    // JS never fuses a multiply and an add, so this is the three roundings the header specifies.
    for (let i = 0; i < x.length; i++) clipped[i] = g[i] + scale * (x[i] - g[i]);
    out.set(name, clipped);
  }
  return out;
}

/** The median of values already sorted ascending (non-empty), as the header specifies. */
export function medianOfSorted(sorted: Float64Array): number {
  const k = sorted.length;
  const mid = k >> 1;
  return k % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The tensor names of `update`, sorted, after checking `global` has the same ones and lengths. */
function matchingTensorNames(update: TensorValues, global: TensorValues): string[] {
  for (const name of global.keys()) {
    if (!update.has(name)) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `update lacks tensor ${name} of the global adapter`,
      );
    }
  }
  const names = [...update.keys()].sort(compareUtf8);
  for (const name of names) {
    const g = global.get(name);
    if (g === undefined) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `update has tensor ${name}, which the global adapter does not have`,
      );
    }
    const length = update.get(name)!.length;
    if (g.length !== length) {
      throw new AggregationError(
        'AGGREGATION_SHAPE',
        `update's tensor ${name} has ${length} values, the global adapter's ${g.length}`,
      );
    }
  }
  return names;
}

function checkNorm(value: number, field: string): void {
  if (!Number.isFinite(value) || value < 0) {
    throw new AggregationError('AGGREGATION_CONFIG', `${field} is ${value}; it must be a finite number >= 0`);
  }
}

function checkFinite(values: ArrayLike<number>, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new AggregationError('AGGREGATION_NOT_FINITE', `${what} holds ${values[i]} at flat index ${i}`);
    }
  }
}
