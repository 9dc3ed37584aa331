// Rows -> batches for the step graphs. A step graph has a static shape (batch × sequence bucket),
// so every batch is padded to its bucket; grouping rows of similar length into the smallest bucket
// that fits them, and optionally packing several short examples into one row, keeps padding (work
// that trains nothing) low. Packed rows carry TokenRow.segments: makeBatch then lets tokens attend
// only within their own example and restarts positions at each example.
//
// Deterministic: the same rows, options and seed give the same batches.

import type { TokenRow } from '@fedit/kernels';
import { DatasetError } from './errors.ts';
import { seededRandom, shuffleInPlace } from './random.ts';

/**
 * Powers of two from `min` up to cutoffLen, and cutoffLen itself, each rounded up to a multiple of
 * `multiple` (kernels like sequence lengths that divide evenly). cutoffLen 512 -> [16, 32, ..., 512];
 * cutoffLen 300 -> [16, 32, 64, 128, 256, 304].
 */
export function sequenceBuckets(
  cutoffLen: number,
  options: { min?: number; multiple?: number } = {},
): number[] {
  const min = options.min ?? 16;
  const multiple = options.multiple ?? 8;
  if (!Number.isInteger(cutoffLen) || cutoffLen < 1) {
    throw new DatasetError('DATASET_OPTIONS', `cutoffLen must be a positive integer, not ${cutoffLen}`);
  }
  if (!Number.isInteger(multiple) || multiple < 1 || !Number.isInteger(min) || min < 1) {
    throw new DatasetError('DATASET_OPTIONS', 'bucket min and multiple must be positive integers');
  }
  const up = (n: number) => Math.ceil(n / multiple) * multiple;
  const buckets = new Set<number>();
  for (let p = 1; p < cutoffLen; p *= 2) if (p >= min) buckets.add(up(p));
  buckets.add(up(cutoffLen));
  return [...buckets].sort((a, b) => a - b);
}

export interface BatchOptions {
  /** Rows per batch: the batch dimension of the step graph. */
  batchSize: number;
  /** Allowed sequence lengths (any order); every row must fit the largest. */
  buckets: readonly number[];
  seed: number | string;
  /** Shuffle rows and batch order (default true). Off: input order, batches by bucket. */
  shuffle?: boolean;
  /** Pack several examples into one row, each a segment (default false). */
  pack?: boolean;
  /** Longest packed row (default: the largest bucket). */
  packLength?: number;
}

export interface Batch {
  /** The sequence bucket: the smallest allowed one that fits the longest row. */
  seq: number;
  /** At most batchSize rows; makeBatch pads the rest of the batch. */
  rows: TokenRow[];
  /** For each row, the indices (into the input rows) of the examples it holds, in order. */
  examples: number[][];
}

export interface BatchStats {
  examples: number;
  /** Rows after packing (equal to examples without packing). */
  rows: number;
  batches: number;
  batchSize: number;
  /** Tokens of the examples. */
  realTokens: number;
  /** Token slots the step graphs process: Σ batchSize × seq over batches. */
  slotTokens: number;
  /** realTokens / slotTokens. */
  paddingEfficiency: number;
  /** The efficiency of padding every batch to the largest bucket, one example per row, for comparison. */
  unbucketedEfficiency: number;
  /** Batches per bucket, for the buckets that have any. */
  byBucket: { seq: number; batches: number }[];
}

export interface BatchPlan {
  batches: Batch[];
  stats: BatchStats;
}

/** Lowest index i with sorted[i] >= n, or -1. */
function firstFitting(sorted: readonly number[], n: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] >= n) hi = mid;
    else lo = mid + 1;
  }
  return lo === sorted.length ? -1 : lo;
}

/**
 * Best-fit decreasing: longest examples first, each into the fullest row it still fits, so rows
 * come out nearly full. Ties keep the (shuffled) input order.
 */
function packRows(lengths: readonly number[], order: readonly number[], capacity: number): number[][] {
  const sorted = [...order].sort((a, b) => lengths[b] - lengths[a]);
  const bins: number[][] = [];
  // binsByRoom[r]: rows with exactly r free tokens
  const binsByRoom: number[][] = Array.from({ length: capacity + 1 }, () => []);
  for (const i of sorted) {
    const n = lengths[i];
    let room = n;
    while (room <= capacity && binsByRoom[room].length === 0) room++;
    let bin: number;
    if (room > capacity) {
      bin = bins.push([]) - 1;
      room = capacity;
    } else bin = binsByRoom[room].pop()!;
    bins[bin].push(i);
    binsByRoom[room - n].push(bin);
  }
  return bins;
}

function packedRow(rows: readonly TokenRow[], members: readonly number[]): TokenRow {
  const length = members.reduce((s, i) => s + rows[i].inputIds.length, 0);
  const inputIds = new Array<number>(length);
  const labels = new Array<number>(length);
  const segments = new Array<number>(length);
  let offset = 0;
  members.forEach((i, segment) => {
    const r = rows[i];
    for (let t = 0; t < r.inputIds.length; t++, offset++) {
      inputIds[offset] = r.inputIds[t];
      labels[offset] = r.labels[t];
      segments[offset] = segment;
    }
  });
  return { inputIds, labels, segments };
}

export function planBatches(rows: readonly TokenRow[], options: BatchOptions): BatchPlan {
  const { batchSize } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new DatasetError('DATASET_OPTIONS', `batchSize must be a positive integer, not ${batchSize}`);
  }
  const buckets = [...new Set(options.buckets)].sort((a, b) => a - b);
  if (buckets.length === 0 || buckets.some((b) => !Number.isInteger(b) || b < 1)) {
    throw new DatasetError(
      'DATASET_OPTIONS',
      'sequence buckets must be a non-empty list of positive integers',
    );
  }
  const largest = buckets[buckets.length - 1];
  const lengths = rows.map((r, i) => {
    const n = r.inputIds.length;
    if (n === 0) throw new DatasetError('DATASET_OPTIONS', `row ${i} has no tokens`);
    if (n > largest) {
      throw new DatasetError(
        'DATASET_OPTIONS',
        `row ${i} has ${n} tokens, more than the largest sequence bucket (${largest}); build rows with a cutoffLen that fits`,
      );
    }
    return n;
  });

  const shuffle = options.shuffle ?? true;
  const random = seededRandom(options.seed);
  const order = rows.map((_, i) => i);
  if (shuffle) shuffleInPlace(order, random);

  // groups: the examples of each row to be batched
  let groups: number[][];
  if (options.pack) {
    const capacity = options.packLength ?? largest;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > largest) {
      throw new DatasetError(
        'DATASET_OPTIONS',
        `packLength must be an integer from 1 to the largest bucket (${largest})`,
      );
    }
    if (lengths.some((n) => n > capacity)) {
      throw new DatasetError('DATASET_OPTIONS', `packLength ${capacity} is shorter than the longest row`);
    }
    groups = packRows(lengths, order, capacity);
    if (shuffle) shuffleInPlace(groups, random);
  } else groups = order.map((i) => [i]);

  const groupLength = (g: readonly number[]) => g.reduce((s, i) => s + lengths[i], 0);
  const bucketOf = (n: number) => buckets[firstFitting(buckets, n)];

  // Batches of one bucket each, smallest bucket first; the few rows left over from a bucket join
  // the next bucket up rather than make a batch that is mostly padding.
  const byBucket = buckets.map(() => [] as number[][]);
  for (const g of groups) byBucket[firstFitting(buckets, groupLength(g))].push(g);
  const batchedGroups: number[][][] = [];
  let carry: number[][] = [];
  for (const inBucket of byBucket) {
    const pool = carry.concat(inBucket);
    const full = Math.floor(pool.length / batchSize);
    for (let b = 0; b < full; b++) batchedGroups.push(pool.slice(b * batchSize, (b + 1) * batchSize));
    carry = pool.slice(full * batchSize);
  }
  if (carry.length) batchedGroups.push(carry);
  if (shuffle) shuffleInPlace(batchedGroups, random);

  const batches: Batch[] = batchedGroups.map((members) => ({
    seq: bucketOf(Math.max(...members.map(groupLength))),
    rows: members.map((g) => (options.pack ? packedRow(rows, g) : rows[g[0]])),
    examples: members.map((g) => [...g]),
  }));

  const realTokens = lengths.reduce((s, n) => s + n, 0);
  const slotTokens = batches.reduce((s, b) => s + batchSize * b.seq, 0);
  const counts = new Map<number, number>();
  for (const b of batches) counts.set(b.seq, (counts.get(b.seq) ?? 0) + 1);
  const unbucketedSlots = Math.ceil(rows.length / batchSize) * batchSize * largest;
  return {
    batches,
    stats: {
      examples: rows.length,
      rows: groups.length,
      batches: batches.length,
      batchSize,
      realTokens,
      slotTokens,
      paddingEfficiency: slotTokens === 0 ? 1 : realTokens / slotTokens,
      unbucketedEfficiency: unbucketedSlots === 0 ? 1 : realTokens / unbucketedSlots,
      byBucket: [...counts].sort((a, b) => a[0] - b[0]).map(([seq, n]) => ({ seq, batches: n })),
    },
  };
}
