// The weighted mean the mean rules compute, with arithmetic fixed to the last bit so that an
// auditor (in any language) recomputes the same float32 values from the same updates:
//
//   for every update k in canonical order (ascending participant id), for every element i:
//       S[i] = S[i] + (w_k * x_k[i])        binary64, round-to-nearest-even, no fused multiply-add
//   W = w_1 + ... + w_K                     exact: weights are integers and W must stay <= 2^53
//   target[i] = S[i] / W                    the binary64 quotient
//   result[i] = float32(target[i])          rounded to binary32 (when no server optimizer follows)
//
// S starts at +0. x_k[i] is a float32 value widened exactly to binary64 (or, for an update the
// round clipped, the binary64 value clipping computed). With w_k < 2^29 and float32 x the product
// is exact, so only the additions round. Summation is strictly sequential (not pairwise, as
// numpy.sum would do). In numpy: S = np.zeros(n); for w, x in updates: S += w * x.astype(np.float64);
// result = (S / W).astype(np.float32).

import { AggregationError } from './aggregation-error.ts';
import type { UpdateValues } from './rule.ts';
import { validateUpdate, type AdapterSchema, type TensorValues } from './schema.ts';
import { numel } from '../tensors/tensor.ts';

/** How the rule turns the weight it is given into the weight it sums with. */
export type WeightPolicy = 'example-count' | 'uniform';

/** A running weighted mean: the memory of one adapter's sums, whatever the number of updates. */
export interface Accumulator {
  /**
   * Adds one participant's update with its weight (the participant's example count). Throws
   * AggregationError naming the tensor when the update does not fit the schema or holds a
   * non-finite value, and leaves the accumulator unchanged in that case.
   */
  add(update: TensorValues, weight: number): void;
  /** The aggregate of the updates added so far, by tensor name in schema order; fresh arrays. */
  result(): Map<string, Float32Array>;
  /** Number of updates added. */
  readonly count: number;
  /** Sum of the weights the rule counted (for fedavg-uniform, the number of updates). */
  readonly totalWeight: number;
  /** Bytes of running state the accumulator holds: fixed by the schema, not by `count`. */
  readonly stateBytes: number;
}

export class WeightedMeanAccumulator implements Accumulator {
  readonly #schema: AdapterSchema;
  readonly #policy: WeightPolicy;
  // One running sum per tensor and nothing else: the accumulator never keeps an update.
  readonly #sums: Map<string, Float64Array>;
  #count = 0;
  #totalWeight = 0;

  constructor(schema: AdapterSchema, policy: WeightPolicy) {
    this.#schema = schema;
    this.#policy = policy;
    this.#sums = new Map([...schema].map(([name, shape]) => [name, new Float64Array(numel(shape))]));
  }

  get count(): number {
    return this.#count;
  }

  get totalWeight(): number {
    return this.#totalWeight;
  }

  get stateBytes(): number {
    let bytes = 0;
    for (const sum of this.#sums.values()) bytes += sum.byteLength;
    return bytes;
  }

  add(update: TensorValues, weight: number): void {
    checkExampleCount(weight);
    // Validated in full before any sum changes, so a rejected update leaves no trace.
    validateUpdate(this.#schema, update);
    this.addValidated(update, weight);
  }

  /** add() for values the round pipeline has already validated against the schema (and clipped). */
  addValidated(update: UpdateValues, weight: number): void {
    // The uniform rule ignores the count but still refuses a nonsensical one: the caller passes
    // example counts whatever the rule, and a bad one is a bug worth hearing about.
    checkExampleCount(weight);
    const w = this.#policy === 'uniform' ? 1 : weight;
    const total = this.#totalWeight + w;
    if (!Number.isSafeInteger(total)) {
      throw new AggregationError(
        'AGGREGATION_WEIGHT',
        `the weights of this round sum past 2^53 (${this.#totalWeight} + ${w}); example counts that large cannot be averaged exactly`,
      );
    }
    for (const [name, sum] of this.#sums) {
      const values = update.get(name)!;
      for (let i = 0; i < sum.length; i++) sum[i] += w * values[i];
    }
    this.#count++;
    this.#totalWeight = total;
  }

  result(): Map<string, Float32Array> {
    return toFloat32(this.target());
  }

  /** The binary64 means S / W (the target a server optimizer steps toward). */
  target(): Map<string, Float64Array> {
    if (this.#count === 0) {
      throw new AggregationError('AGGREGATION_EMPTY', 'no update was added; there is nothing to aggregate');
    }
    const total = this.#totalWeight;
    const out = new Map<string, Float64Array>();
    for (const [name, sum] of this.#sums) {
      const mean = new Float64Array(sum.length);
      for (let i = 0; i < sum.length; i++) mean[i] = sum[i] / total;
      out.set(name, mean);
    }
    return out;
  }
}

/** Example counts are positive integers: a participant that trained on nothing contributes nothing. */
function checkExampleCount(weight: number): number {
  if (!Number.isSafeInteger(weight) || weight <= 0) {
    throw new AggregationError(
      'AGGREGATION_WEIGHT',
      `weight ${weight} is not a positive integer; weights are the participants' example counts`,
    );
  }
  return weight;
}

/** Rounds binary64 values to float32 (nearest-even, like a C cast), tensor by tensor. */
export function toFloat32(values: ReadonlyMap<string, Float64Array>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of values) out.set(name, Float32Array.from(v));
  return out;
}
