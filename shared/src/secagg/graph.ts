// Who masks with whom. Bonawitz et al. (CCS 2017) pair every participant with every other; SecAgg+
// (Bell et al., CCS 2020, §3) pairs each with k neighbours of a random k-regular graph, k = O(log n),
// so a participant's keys, masks and shares grow with log n rather than n. The graph here is the
// Harary graph H(k, n) (a ring where each node joins the k/2 nearest on each side) under a random
// relabelling drawn from a seed the round publishes, fixed exactly:
//
//   ids        the round's participant ids, distinct integers in [0, 2^32), sorted ascending: v_0..v_(n−1)
//   degree k   even, 2 <= k <= n − 2; k >= n − 1 means the complete graph (every pair)
//   shuffle    Fisher–Yates with words w from prgStream(graphSeed): for i = n−1 down to 1, draw w
//              until w < floor(2^32 / (i+1))·(i+1) (rejection, so j is uniform), j = w mod (i+1),
//              swap positions i and j; the result is π_0..π_(n−1)
//   neighbours N(π_p) = { π_((p+d) mod n), π_((p−d) mod n) : d = 1..k/2 }, listed ascending
//
// Why a published seed: every participant and the auditor must derive the same graph, and a seed the
// coordinator cannot choose (the round's selection seed) keeps it from isolating one participant
// among colluders.

import { prgStream, checkBytes, SEED_BYTES } from './prg.ts';
import { SecAggError } from './secagg-error.ts';

/** Each participant's neighbours, ascending; symmetric (j in N(i) iff i in N(j)). */
export type MaskGraph = ReadonlyMap<number, readonly number[]>;

/** The most participants one round's graph may hold. */
export const MAX_GRAPH_PARTICIPANTS = 2 ** 20;

/** Sorted copy of `ids`, refusing duplicates, non-integers and ids outside [0, 2^32). */
export function checkIds(ids: readonly number[]): number[] {
  if (!Array.isArray(ids) || ids.length < 2 || ids.length > MAX_GRAPH_PARTICIPANTS) {
    throw new SecAggError('SECAGG_INPUT', `ids must list 2 to ${MAX_GRAPH_PARTICIPANTS} participants`);
  }
  const sorted = [...ids].sort((a, b) => a - b);
  sorted.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) {
      throw new SecAggError('SECAGG_INPUT', `ids contains ${String(id)}, not an integer from 0 to 2^32 − 1`);
    }
    if (i > 0 && sorted[i - 1] === id) throw new SecAggError('SECAGG_INPUT', `ids repeats ${id}`);
  });
  return sorted;
}

/** Every pair masks: the graph of Bonawitz et al. */
export function completeGraph(ids: readonly number[]): MaskGraph {
  const sorted = checkIds(ids);
  return new Map(sorted.map((id) => [id, sorted.filter((other) => other !== id)]));
}

/** The SecAgg+ graph of the header: H(k, n) relabelled by a permutation drawn from `graphSeed`. */
export function secAggPlusGraph(ids: readonly number[], degree: number, graphSeed: Uint8Array): MaskGraph {
  const sorted = checkIds(ids);
  checkBytes(graphSeed, SEED_BYTES, 'graphSeed');
  const n = sorted.length;
  if (!Number.isInteger(degree) || degree < 2 || degree % 2 !== 0) {
    throw new SecAggError('SECAGG_INPUT', 'degree must be an even integer of at least 2');
  }
  if (degree >= n - 1) return completeGraph(sorted);
  const next = prgStream(graphSeed);
  const perm = sorted;
  for (let i = n - 1; i >= 1; i--) {
    const range = i + 1;
    const limit = Math.floor(2 ** 32 / range) * range;
    let w = next();
    while (w >= limit) w = next();
    const j = w % range;
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const graph = new Map<number, number[]>();
  for (let p = 0; p < n; p++) {
    const neighbours: number[] = [];
    for (let d = 1; d <= degree / 2; d++) neighbours.push(perm[(p + d) % n], perm[(p - d + n) % n]);
    graph.set(
      perm[p],
      neighbours.sort((a, b) => a - b),
    );
  }
  return graph;
}

/** Suggested SecAgg+ degree: the smallest even k >= 2·ceil(log2 n), capped at the complete graph. */
export function secAggPlusDegree(participants: number): number {
  if (!Number.isInteger(participants) || participants < 2) {
    throw new SecAggError('SECAGG_INPUT', 'participants must be an integer of at least 2');
  }
  const k = 2 * Math.ceil(Math.log2(participants));
  return Math.min(k, participants - 1 + ((participants - 1) % 2));
}
