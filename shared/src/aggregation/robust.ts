// Robust combiners for the plaintext round pipeline: what replaces the weighted mean when some
// participants may send hostile updates. Each takes the round's K updates (already clipped toward
// the global adapter, as binary64 values, in canonical participant order) and ignores example
// counts: a weight a participant declares is exactly what a hostile one would inflate.
//
//   coordinateMedian   Yin et al. 2018, "Byzantine-Robust Distributed Learning: Towards Optimal
//                      Statistical Rates": the median of the K values, element by element.
//   trimmedMean        Yin et al. 2018: element by element, drop the t smallest and t largest of the
//                      K values and average the rest.
//   krumScores         Blanchard et al. 2017, "Machine Learning with Adversaries: Byzantine Tolerant
//   multiKrumSelect    Gradient Descent" (Krum and multi-Krum); El Mhamdi et al. 2018, "The Hidden
//   multiKrumMean      Vulnerability of Distributed Learning in Byzantium" (multi-Krum's use and
//                      its m <= K - f): score each update by its distances to its nearest others,
//                      keep the m best, average them.
//
// Arithmetic, fixed to the bit so that `fedit audit` (or numpy) recomputes it. Every value is
// binary64, every operation rounds to nearest even, nothing is fused. Inputs are validated finite,
// so no comparison meets a NaN and every sort below is a plain numeric sort; equal values are
// interchangeable, so which of two ties comes first never changes a result (the one case where
// equal values differ in bits, -0 and +0, is settled by the "+ 0" below).
//
//   median[i]   = m + 0, where v = sort ascending (x_1[i], ..., x_K[i]) and
//                 m = v[(K-1)/2] for K odd, (v[K/2-1] + v[K/2]) / 2 for K even
//                 (the "+ 0" turns a -0 into +0, so the sign of a zero never depends on the sort)
//   trimmed[i]  = (((+0 + v[t]) + v[t+1]) + ... + v[K-t-1]) / (K - 2t)
//                 (the kept values summed in ascending order, so a permutation of the participants
//                 changes no bit), with the trim count t of every element:
//   t           = 0                                       trimFraction == 0
//               = min(max(1, floor(trimFraction * K)),    otherwise (binary64 product, then floor)
//                     floor((K - 1) / 2))
//                 A positive fraction trims at least one value from each end, as long as one value
//                 stays: floor(0.2 * 3) = 0 would make K = 3 the plain mean, which one hostile update
//                 moves anywhere; t = 1 there is the median. K <= 2 trims nothing (nothing can be
//                 told apart), and trimFraction < 0.5 makes floor(trimFraction * K) <= floor((K-1)/2)
//                 already, so the cap only bites where the max(1, ...) raised t.
//   dist(j, k)  = sum over tensors in ascending UTF-8 order of their names, elements in order, of
//                 (x_j[e] - x_k[e])^2, starting from +0        (exactly symmetric: a-b = -(b-a))
//   score(j)    = sum of the K - f - 2 smallest of dist(j, k), k != j, added in ascending order
//                 starting from +0                              (f = the number of Byzantine updates
//                                                               tolerated)
//   select(m)   = the m indices of lowest score; ties by lower index (= earlier in canonical order)
//   krumMean[i] = (((+0 + x_s1[i]) + x_s2[i]) + ... + x_sm[i]) / m, s1 < s2 < ... < sm the selected
//                 indices in ascending order (canonical order, not score order)
//
// In numpy: median = np.median(X, axis=0) + 0.0; trimmed = sequential sum over np.sort(X, axis=0)
// [t:K-t] divided by K - 2t, t = 0 if f == 0 else min(max(1, math.floor(f * K)), (K - 1) // 2); dist as a Python loop or np.add.reduce over a flat row in order.
//
// Memory: unlike the streaming weighted mean, these combiners hold all K updates at once (K times
// the adapter in binary64, plus one column of K values; Krum also a K x K distance table). They are
// for the plaintext path, where K is the participants of one round; secure aggregation only
// admits sums and cannot use them.

import { AggregationError } from './aggregation-error.ts';
import { medianOfSorted, type Values64 } from './clipping.ts';
import { compareUtf8 } from './rule.ts';
import type { AdapterSchema } from './schema.ts';
import { numel } from '../tensors/tensor.ts';

/** The element-wise median of the K updates, by tensor name in schema order. */
export function coordinateMedian(
  updates: readonly Values64[],
  schema: AdapterSchema,
): Map<string, Float64Array> {
  checkUpdates(updates, schema);
  return combineColumns(updates, schema, (sorted) => medianOfSorted(sorted) + 0);
}

/**
 * The element-wise mean of the K updates after dropping trimCount(trimFraction, K) values from
 * each end. trimFraction must be in [0, 0.5).
 */
export function trimmedMean(
  updates: readonly Values64[],
  schema: AdapterSchema,
  trimFraction: number,
): Map<string, Float64Array> {
  if (!(trimFraction >= 0 && trimFraction < 0.5)) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `trim fraction ${trimFraction} is not in [0, 0.5): trimming half or more from each side leaves nothing`,
    );
  }
  checkUpdates(updates, schema);
  const k = updates.length;
  const trim = trimCount(trimFraction, k);
  const kept = k - 2 * trim;
  return combineColumns(updates, schema, (sorted) => {
    let sum = 0;
    for (let j = trim; j < k - trim; j++) sum += sorted[j];
    return sum / kept;
  });
}

/**
 * How many values the trimmed mean drops from each end of a column of K (the header's t): none for
 * a fraction of 0; otherwise floor(trimFraction * K) but at least 1, and at most floor((K - 1) / 2)
 * so that one value stays. trimFraction is taken as already checked to be in [0, 0.5).
 */
export function trimCount(trimFraction: number, k: number): number {
  if (trimFraction === 0) return 0;
  return Math.min(Math.max(1, Math.floor(trimFraction * k)), Math.floor((k - 1) / 2));
}

/**
 * Krum scores (Blanchard et al. 2017): for each i, the sum of squared L2 distances to its
 * K - f - 2 nearest other updates. Needs K >= 2f + 3.
 */
export function krumScores(updates: readonly Values64[], byzantine: number): number[] {
  const k = updates.length;
  checkByzantine(k, byzantine);
  checkUpdates(updates, schemaOf(updates[0]));
  const distances = pairwiseSquaredDistances(updates);
  const nearest = k - byzantine - 2;
  return distances.map((row, j) => {
    const others = Float64Array.from(row.filter((_, other) => other !== j)).sort();
    let score = 0;
    for (let n = 0; n < nearest; n++) score += others[n];
    return score;
  });
}

/**
 * Indices of the m updates with the lowest Krum scores, ascending score, ties by index. m=1 is
 * Krum. Needs 1 <= m <= K - f: multi-Krum's guarantee (El Mhamdi et al. 2018) is for m <= K - f.
 */
export function multiKrumSelect(updates: readonly Values64[], byzantine: number, m: number): number[] {
  const k = updates.length;
  checkByzantine(k, byzantine);
  if (!Number.isSafeInteger(m) || m < 1 || m > k - byzantine) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `multi-Krum keeps m = ${m} updates; it must be an integer from 1 to K - f = ${k - byzantine}`,
    );
  }
  const scores = krumScores(updates, byzantine);
  const order = scores.map((_, j) => j).sort((a, b) => scores[a] - scores[b] || a - b);
  return order.slice(0, m);
}

/**
 * Multi-Krum's aggregate: the plain mean of the m selected updates, summed in canonical
 * (ascending index) order. m=1 returns the Krum-selected update itself.
 */
export function multiKrumMean(
  updates: readonly Values64[],
  schema: AdapterSchema,
  byzantine: number,
  m: number,
): Map<string, Float64Array> {
  checkUpdates(updates, schema);
  const selected = multiKrumSelect(updates, byzantine, m).sort((a, b) => a - b);
  const out = new Map<string, Float64Array>();
  for (const name of schema.keys()) {
    const mean = new Float64Array(numel(schema.get(name)!));
    for (let i = 0; i < mean.length; i++) {
      let sum = 0;
      for (const s of selected) sum += updates[s].get(name)![i];
      mean[i] = sum / selected.length;
    }
    out.set(name, mean);
  }
  return out;
}

/**
 * Applies `reduce` to the sorted column of K values of every element, tensor by tensor in schema
 * order. The column is reused, so `reduce` must not keep it.
 */
function combineColumns(
  updates: readonly Values64[],
  schema: AdapterSchema,
  reduce: (sorted: Float64Array) => number,
): Map<string, Float64Array> {
  const column = new Float64Array(updates.length);
  const out = new Map<string, Float64Array>();
  for (const name of schema.keys()) {
    const tensors = updates.map((update) => update.get(name)!);
    const combined = new Float64Array(tensors[0].length);
    for (let i = 0; i < combined.length; i++) {
      for (let k = 0; k < tensors.length; k++) column[k] = tensors[k][i];
      combined[i] = reduce(column.sort());
    }
    out.set(name, combined);
  }
  return out;
}

/** dist(j, k) of the header for every pair, each computed once (the table is symmetric). */
function pairwiseSquaredDistances(updates: readonly Values64[]): number[][] {
  const names = [...updates[0].keys()].sort(compareUtf8);
  const k = updates.length;
  const table = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let a = 0; a < k; a++) {
    for (let b = a + 1; b < k; b++) {
      let sum = 0;
      for (const name of names) {
        const x = updates[a].get(name)!;
        const y = updates[b].get(name)!;
        for (let e = 0; e < x.length; e++) {
          const d = x[e] - y[e];
          sum += d * d;
        }
      }
      table[a][b] = sum;
      table[b][a] = sum;
    }
  }
  return table;
}

function checkByzantine(k: number, byzantine: number): void {
  if (!Number.isSafeInteger(byzantine) || byzantine < 0) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `Krum's byzantine count f = ${byzantine} is not an integer >= 0`,
    );
  }
  if (k < 2 * byzantine + 3) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `Krum tolerating f = ${byzantine} hostile updates needs K >= 2f + 3 = ${2 * byzantine + 3} updates; the round has ${k}`,
    );
  }
}

/** A schema with the first update's tensor names (in UTF-8 order) and lengths, for Krum's checks. */
function schemaOf(update: Values64): AdapterSchema {
  return new Map([...update.keys()].sort(compareUtf8).map((name) => [name, [update.get(name)!.length]]));
}

/**
 * Throws AggregationError naming the update (its index in canonical order) and the tensor unless
 * there is at least one update and each has exactly the schema's tensors, each a Float64Array of
 * the shape's length, all finite.
 */
function checkUpdates(updates: readonly Values64[], schema: AdapterSchema): void {
  if (updates.length === 0) {
    throw new AggregationError('AGGREGATION_EMPTY', 'no update was given; there is nothing to combine');
  }
  updates.forEach((update, k) => {
    for (const name of update.keys()) {
      if (!schema.has(name)) {
        throw new AggregationError(
          'AGGREGATION_TENSOR_NAME',
          `update ${k}: has tensor ${name}, which the global adapter does not have`,
        );
      }
    }
    for (const [name, shape] of schema) {
      const values = update.get(name);
      if (values === undefined) {
        throw new AggregationError(
          'AGGREGATION_TENSOR_NAME',
          `update ${k}: lacks tensor ${name} of the global adapter`,
        );
      }
      if (!(values instanceof Float64Array) || values.length !== numel(shape)) {
        throw new AggregationError(
          'AGGREGATION_SHAPE',
          `update ${k}: tensor ${name} is not a Float64Array of ${numel(shape)} values`,
        );
      }
      const bad = values.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw new AggregationError(
          'AGGREGATION_NOT_FINITE',
          `update ${k}: tensor ${name} holds ${values[bad]} at flat index ${bad}`,
        );
      }
    }
  });
}
