// Splitting a dataset with categories across simulated participants, seeded, non-IID in one of two
// standard ways:
//
// - shards (Shepherd's category-sharded Dolly, the demo's split): participant i holds k
//   consecutive categories (cyclically) starting at category floor(i * C / n). A category held by
//   several participants is dealt out evenly between them, so the shards stay disjoint.
// - dirichlet (Hsu, Qi and Brown 2019, "Measuring the effects of non-identical data distribution
//   for federated visual classification"): for each category, proportions over the n
//   participants are drawn from Dirichlet(alpha, ..., alpha) and the category's records are dealt
//   out in those proportions. Small alpha: each category sits with few participants; large alpha:
//   close to IID. A draw that leaves a participant with fewer than `minPerParticipant` records is
//   drawn again (as NIID-Bench does), so that nobody trains on nothing.
//
// Either way every record goes to at most one participant (shards may leave a category nobody
// holds), and the same seed gives the same split.

import { FeditError } from '@fedit/shared';
import { seededRandom, shuffleInPlace } from '../core/data/random.ts';
import type { InstructionRecord } from '../demo/tasks.ts';

export type SplitSpec =
  { kind: 'shards'; categoriesPerParticipant: number } | { kind: 'dirichlet'; alpha: number };

export interface ParticipantShard<R extends InstructionRecord = InstructionRecord> {
  name: string;
  /** The categories this participant holds records of, in the dataset's category order. */
  categories: string[];
  train: R[];
}

export interface SplitOptions {
  participants: number;
  split: SplitSpec;
  seed: number | string;
  /** Dirichlet only: the fewest records a participant may get (default 8, a batch). */
  minPerParticipant?: number;
}

/** The categories of `records`, in order of first appearance. */
export function categoriesOf(records: readonly InstructionRecord[]): string[] {
  return [...new Set(records.map((r) => r.category))];
}

/** `records` dealt out to `o.participants` participants named participant-1, participant-2, ... */
export function splitByCategory<R extends InstructionRecord>(
  records: readonly R[],
  o: SplitOptions,
): ParticipantShard<R>[] {
  const n = o.participants;
  if (!(Number.isInteger(n) && n >= 1))
    throw new FeditError('SIMULATION_OPTIONS', `participants must be a whole number >= 1, got ${n}`);
  const categories = categoriesOf(records);
  if (categories.length === 0)
    throw new FeditError('SIMULATION_OPTIONS', 'the dataset holds no records to split');
  const byCategory = new Map(categories.map((c) => [c, [] as R[]]));
  for (const r of records) byCategory.get(r.category)!.push(r);
  for (const [c, list] of byCategory) shuffleInPlace(list, seededRandom(`${o.seed}:split:${c}`));

  const dealt =
    o.split.kind === 'shards'
      ? shardCounts(categories, byCategory, n, o.split.categoriesPerParticipant)
      : dirichletCounts(categories, byCategory, n, o.split.alpha, o.seed, o.minPerParticipant ?? 8);
  const shards: ParticipantShard<R>[] = Array.from({ length: n }, (_, i) => ({
    name: `participant-${i + 1}`,
    categories: [],
    train: [],
  }));
  for (const c of categories) {
    const list = byCategory.get(c)!;
    let next = 0;
    dealt.get(c)!.forEach((count, i) => {
      if (count === 0) return;
      shards[i].categories.push(c);
      shards[i].train.push(...list.slice(next, next + count));
      next += count;
    });
  }
  shards.forEach((s, i) => shuffleInPlace(s.train, seededRandom(`${o.seed}:split:order-${i}`)));
  return shards;
}

/** Per category, how many of its records each participant gets under the shards split. */
function shardCounts(
  categories: readonly string[],
  byCategory: ReadonlyMap<string, readonly unknown[]>,
  n: number,
  k: number,
): Map<string, number[]> {
  const C = categories.length;
  if (!(Number.isInteger(k) && k >= 1 && k <= C)) {
    throw new FeditError(
      'SIMULATION_OPTIONS',
      `split shards:${k}: each participant must hold 1 to ${C} categories (the dataset has ${C})`,
    );
  }
  const holders = new Map(categories.map((c) => [c, [] as number[]]));
  for (let i = 0; i < n; i++) {
    const start = Math.floor((i * C) / n);
    for (let j = 0; j < k; j++) holders.get(categories[(start + j) % C])!.push(i);
  }
  const counts = new Map<string, number[]>();
  for (const c of categories) {
    const m = byCategory.get(c)!.length;
    const mine = holders.get(c)!;
    const row = new Array<number>(n).fill(0);
    // Holder j of h gets records [floor(j m / h), floor((j + 1) m / h)).
    mine.forEach(
      (i, j) => (row[i] = Math.floor(((j + 1) * m) / mine.length) - Math.floor((j * m) / mine.length)),
    );
    counts.set(c, row);
  }
  return counts;
}

/** Per category, how many of its records each participant gets under Dirichlet(alpha) proportions. */
function dirichletCounts(
  categories: readonly string[],
  byCategory: ReadonlyMap<string, readonly unknown[]>,
  n: number,
  alpha: number,
  seed: number | string,
  minPerParticipant: number,
): Map<string, number[]> {
  if (!(alpha > 0 && Number.isFinite(alpha)))
    throw new FeditError('SIMULATION_OPTIONS', `split dirichlet:${alpha}: alpha must be > 0`);
  const random = seededRandom(`${seed}:split:dirichlet`);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const counts = new Map<string, number[]>();
    const totals = new Array<number>(n).fill(0);
    for (const c of categories) {
      const m = byCategory.get(c)!.length;
      const p = dirichlet(n, alpha, random);
      // Cumulative proportions rounded: the counts sum to m exactly.
      let cumulative = 0;
      let dealt = 0;
      const row = p.map((share, i) => {
        cumulative += share;
        const upTo = i === n - 1 ? m : Math.round(cumulative * m);
        const count = upTo - dealt;
        dealt = upTo;
        return count;
      });
      row.forEach((count, i) => (totals[i] += count));
      counts.set(c, row);
    }
    if (totals.every((t) => t >= minPerParticipant)) return counts;
  }
  throw new FeditError(
    'SIMULATION_OPTIONS',
    `split dirichlet:${alpha}: no draw in 1000 gave every one of ${n} participants ${minPerParticipant} records; use more data, fewer participants or a larger alpha`,
  );
}

/** One draw of Dirichlet(alpha, ..., alpha) in n dimensions: normalised Gamma(alpha, 1) draws. */
export function dirichlet(n: number, alpha: number, random: () => number): number[] {
  const g = Array.from({ length: n }, () => gamma(alpha, random));
  const total = g.reduce((a, b) => a + b, 0);
  return total > 0 ? g.map((x) => x / total) : g.map((_, i) => (i === 0 ? 1 : 0));
}

/**
 * Gamma(shape, 1) by Marsaglia and Tsang (2000); a shape below 1 is boosted
 * (Gamma(shape + 1) * U^(1/shape)).
 */
function gamma(shape: number, random: () => number): number {
  if (shape < 1) return gamma(shape + 1, random) * Math.pow(1 - random(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = standardNormal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - random();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** A standard normal draw (Box-Muller). */
function standardNormal(random: () => number): number {
  const u = 1 - random(); // in (0, 1]
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}
