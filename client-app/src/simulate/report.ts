// What a simulation bench reports: for each seed the baselines (once) and each rule's federation,
// then, per evaluation set, every adapter's exact-match accuracy as mean, standard deviation, min
// and max over the seeds, overall and per category; and the two numbers issue 10 asks about: how
// far the federated adapter is below pooled training, and how far above the best participant alone.
//
// The statistics: mean = sum / n; std = sqrt(sum((x - mean)^2) / (n - 1)), the sample standard
// deviation (0 for one seed); accuracies are fractions (0..1) in the JSON and percent in the table.

import type { TaskAccuracy } from '../demo/evaluate.ts';
import type { Accuracies, Baselines, FederatedRun, ShardSummary } from './simulation.ts';

/** One seed: its split, its baselines, and each rule's federation. */
export interface SeedRuns {
  seed: number;
  shards: ShardSummary[];
  baselines: Baselines;
  federated: FederatedRun[];
}

export interface Spread {
  mean: number;
  std: number;
  min: number;
  max: number;
}

export interface SummaryRow {
  adapter: string;
  overall: Spread;
  byCategory: Record<string, Spread>;
}

/**
 * Per evaluation set: the rows; per rule its gap to pooled, its lead over the best participant
 * alone, and its overall accuracy after each round (rounds evaluated in every seed's run only).
 */
export interface EvaluationSummary {
  rows: SummaryRow[];
  rules: Record<string, { belowPooled: Spread; aboveBestAlone: Spread; byRound: RoundSpread[] }>;
}

export interface RoundSpread extends Spread {
  round: number;
}

/** An accuracy as fractions: overall and per category. */
export interface CompactAccuracy {
  overall: number;
  byCategory: Record<string, number>;
}

export function spread(xs: readonly number[]): Spread {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, min: Math.min(...xs), max: Math.max(...xs) };
}

export function compact(a: TaskAccuracy): CompactAccuracy {
  const byCategory: Record<string, number> = {};
  for (const [c, v] of Object.entries(a.byCategory)) byCategory[c] = v.accuracy;
  return { overall: a.overall.accuracy, byCategory };
}

export function compactAll(a: Accuracies): Record<string, CompactAccuracy> {
  return Object.fromEntries(Object.entries(a).map(([set, acc]) => [set, compact(acc)]));
}

/** The best participant alone on `set`, by overall accuracy. */
function bestAlone(b: Baselines, set: string): TaskAccuracy {
  return b.alone
    .map((a) => a.accuracy[set])
    .reduce((x, y) => (y.overall.accuracy > x.overall.accuracy ? y : x));
}

/** The summary of every evaluation set over the seeds. */
export function summarize(
  runs: readonly SeedRuns[],
  sets: readonly string[],
): Record<string, EvaluationSummary> {
  const rules = runs[0]?.federated.map((f) => f.rule) ?? [];
  const out: Record<string, EvaluationSummary> = {};
  for (const set of sets) {
    const named: [string, (r: SeedRuns) => TaskAccuracy][] = [
      ['base model', (r) => r.baselines.base[set]],
      ['pooled', (r) => r.baselines.pooled.accuracy[set]],
      ['best participant alone', (r) => bestAlone(r.baselines, set)],
      ...rules.map((rule, i): [string, (r: SeedRuns) => TaskAccuracy] => [
        `federated ${rule}`,
        (r) => r.federated[i].final[set],
      ]),
    ];
    const rows = named.map(([adapter, pick]) => row(adapter, runs.map(pick)));
    const gaps: EvaluationSummary['rules'] = {};
    rules.forEach((rule, i) => {
      const fed = runs.map((r) => r.federated[i].final[set].overall.accuracy);
      gaps[rule] = {
        belowPooled: spread(runs.map((r, k) => r.baselines.pooled.accuracy[set].overall.accuracy - fed[k])),
        aboveBestAlone: spread(runs.map((r, k) => fed[k] - bestAlone(r.baselines, set).overall.accuracy)),
        byRound: byRound(
          runs.map((r) => r.federated[i]),
          set,
        ),
      };
    });
    out[set] = { rows, rules: gaps };
  }
  return out;
}

/** Overall accuracy on `set` after each round that every run evaluated. */
function byRound(runs: readonly FederatedRun[], set: string): RoundSpread[] {
  const rounds = runs[0]?.rounds.map((x) => x.round) ?? [];
  const out: RoundSpread[] = [];
  for (const round of rounds) {
    const values = runs.map((f) => f.rounds.find((x) => x.round === round)?.accuracy?.[set]);
    if (values.every((v) => v !== undefined)) {
      out.push({ round, ...spread(values.map((v) => v!.overall.accuracy)) });
    }
  }
  return out;
}

function row(adapter: string, accuracies: readonly TaskAccuracy[]): SummaryRow {
  const categories = [...new Set(accuracies.flatMap((a) => Object.keys(a.byCategory)))];
  return {
    adapter,
    overall: spread(accuracies.map((a) => a.overall.accuracy)),
    byCategory: Object.fromEntries(
      categories.map((c) => [c, spread(accuracies.map((a) => a.byCategory[c]?.accuracy ?? 0))]),
    ),
  };
}

const pct = (x: number) => (100 * x).toFixed(0);

/**
 * A gap of whole percentage points to `what`, in words: "12 points below pooled", "3 points above
 * the best participant alone", "level with pooled". The demo's verdict and the bench's summary say
 * it alike.
 */
export function gapInWords(points: number, what: string): string {
  if (points === 0) return `level with ${what}`;
  return `${Math.abs(points)} points ${points > 0 ? 'above' : 'below'} ${what}`;
}

/** "62 ± 4 [57-66]": percent, mean ± std [min-max]. */
function cell(s: Spread, seeds: number): string {
  return seeds > 1 ? `${pct(s.mean)} ± ${pct(s.std)} [${pct(s.min)}-${pct(s.max)}]` : pct(s.mean);
}

/** The readable tables: one per evaluation set, rows of adapters, columns overall and categories. */
export function formatSummary(summary: Record<string, EvaluationSummary>, seeds: number): string {
  const lines: string[] = [];
  for (const [set, s] of Object.entries(summary)) {
    const categories = Object.keys(s.rows[0]?.byCategory ?? {});
    const width = seeds > 1 ? 18 : 10;
    lines.push(
      `\n${set}: exact match %${seeds > 1 ? `, mean ± std [min-max] over ${seeds} seeds` : ''}`,
      'adapter'.padEnd(26) + 'overall'.padStart(width) + categories.map((c) => c.padStart(width)).join(''),
    );
    for (const r of s.rows) {
      lines.push(
        r.adapter.padEnd(26) +
          cell(r.overall, seeds).padStart(width) +
          categories.map((c) => cell(r.byCategory[c], seeds).padStart(width)).join(''),
      );
    }
    for (const [rule, g] of Object.entries(s.rules)) {
      if (g.byRound.length > 1) {
        lines.push(`  ${rule} by round: ${g.byRound.map((x) => `${x.round}: ${pct(x.mean)}`).join(', ')}`);
      }
      lines.push(
        `  ${rule}: ${gapInWords(Math.round(-100 * g.belowPooled.mean), 'pooled')}, ${gapInWords(Math.round(100 * g.aboveBestAlone.mean), 'the best participant alone')}`,
      );
    }
  }
  return lines.join('\n');
}
