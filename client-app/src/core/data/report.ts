// The validation report a participant reads before any training: what was read, what was left
// out and why (file:line), what looks suspicious (duplicates, empty fields), and how long the
// examples are in tokens. A plain data object (for the desktop UI and --json), and formatReport()
// for the terminal.

import { IGNORE_INDEX } from '@fedit/kernels';
import type { BatchStats } from './batching.ts';
import type { DatasetFormat } from './formats.ts';
import type { DuplicateRow, FileSummary, LoadedDataset } from './load.ts';
import type { BuildOptions, PromptTemplate, TrainingExample } from './prompt.ts';
import { where, type SkipCode, type SkippedRow, type SourceRef } from './types.ts';

export interface TokenReport {
  template: PromptTemplate;
  cutoffLen: number;
  trainOnInputs: boolean;
  /** Examples built into rows. */
  examples: number;
  /**
   * Tokens per built example before truncation; `upTo: null` counts those longer than cutoffLen.
   * Examples left out as 'truncated-away' are not in it (they are counted there).
   */
  histogram: { upTo: number | null; count: number }[];
  min: number;
  median: number;
  mean: number;
  max: number;
  /** Examples cut to cutoffLen (still used), and the first of them. */
  truncated: number;
  truncatedRows: SourceRef[];
  /** Examples left out because the cut left no response token (also among the skipped rows). */
  truncatedAway: number;
  /** Examples whose prompt/response boundary split a token, tokenized piece by piece. */
  piecewise: number;
  /** Chat examples of which only the last assistant turn could be trained (see prompt.ts). */
  lastTurnOnly: number;
  /** Tokens in the rows, and those the loss sees (labels not IGNORE_INDEX). */
  tokens: number;
  trainedTokens: number;
}

export interface DatasetReport {
  files: FileSummary[];
  /** Records read (all files). */
  records: number;
  /** Examples ready for training (after tokenizing, when the report covers tokens). */
  usable: number;
  skipped: {
    total: number;
    byCode: Partial<Record<SkipCode, number>>;
    /** The first `maxListed` skipped rows, in file order. */
    rows: SkippedRow[];
  };
  duplicates: {
    /** Records repeating an earlier record's conversation. */
    total: number;
    /** Whether they were left out (else they are trained on like the others). */
    dropped: boolean;
    rows: DuplicateRow[];
  };
  /** Rows skipped because a required field was empty, by field. */
  emptyFields: Record<string, number>;
  /** Usable examples by category, when any record has one. */
  categories?: Record<string, number>;
  tokens?: TokenReport;
  heldOut?: { train: number; heldOut: number };
  batches?: BatchStats;
  /** How many rows each listing shows at most. */
  maxListed: number;
}

export interface ReportParts {
  loaded: LoadedDataset;
  /** When tokenized: the rows (train and held-out), the rows skipped while building, the options. */
  built?: { examples: readonly TrainingExample[]; skipped: readonly SkippedRow[]; options: BuildOptions };
  heldOut?: { train: number; heldOut: number };
  batches?: BatchStats;
  /** Longest listing of rows (skipped, duplicates, truncated). Default 20. */
  maxListed?: number;
}

function tally<K extends string>(keys: Iterable<K>): Partial<Record<K, number>> {
  const counts: Partial<Record<K, number>> = {};
  for (const k of keys) counts[k] = (counts[k] ?? 0) + 1;
  return counts;
}

function bySource(a: { source: SourceRef }, b: { source: SourceRef }, files: readonly string[]): number {
  return files.indexOf(a.source.file) - files.indexOf(b.source.file) || a.source.line - b.source.line;
}

function tokenReport(
  built: NonNullable<ReportParts['built']>,
  files: readonly string[],
  maxListed: number,
): TokenReport {
  const { examples, skipped, options } = built;
  const lengths = examples.map((e) => e.fullLength).sort((a, b) => a - b);
  const edges: number[] = [];
  for (let p = 16; p < options.cutoffLen; p *= 2) edges.push(p);
  edges.push(options.cutoffLen);
  const histogram: TokenReport['histogram'] = edges.map((upTo) => ({ upTo, count: 0 }));
  histogram.push({ upTo: null, count: 0 });
  for (const n of lengths) {
    const i = edges.findIndex((e) => n <= e);
    histogram[i === -1 ? histogram.length - 1 : i].count++;
  }
  const truncated = examples.filter((e) => e.truncated).sort((a, b) => bySource(a, b, files));
  let tokens = 0;
  let trainedTokens = 0;
  for (const e of examples) {
    tokens += e.inputIds.length;
    for (const l of e.labels) if (l !== IGNORE_INDEX) trainedTokens++;
  }
  return {
    template: options.template,
    cutoffLen: options.cutoffLen,
    trainOnInputs: options.trainOnInputs ?? false,
    examples: examples.length,
    histogram,
    min: lengths[0] ?? 0,
    median: lengths.length ? lengths[Math.floor((lengths.length - 1) / 2)] : 0,
    mean: lengths.length ? lengths.reduce((s, n) => s + n, 0) / lengths.length : 0,
    max: lengths.at(-1) ?? 0,
    truncated: truncated.length,
    truncatedRows: truncated.slice(0, maxListed).map((e) => e.source),
    truncatedAway: skipped.filter((s) => s.code === 'truncated-away').length,
    piecewise: examples.filter((e) => e.tokenization === 'piecewise').length,
    lastTurnOnly: examples.filter((e) => e.lastTurnOnly).length,
    tokens,
    trainedTokens,
  };
}

export function createReport(parts: ReportParts): DatasetReport {
  const maxListed = parts.maxListed ?? 20;
  const { loaded, built } = parts;
  const files = loaded.files.map((f) => f.path);
  const skipped = [...loaded.skipped, ...(built?.skipped ?? [])].sort((a, b) => bySource(a, b, files));
  const categories = tally(
    built
      ? built.examples.flatMap((e) => (e.category === undefined ? [] : [e.category]))
      : loaded.examples.flatMap((e) => (e.category === undefined ? [] : [e.category])),
  ) as Record<string, number>;
  const report: DatasetReport = {
    files: loaded.files.map((f) => ({ ...f })),
    records: loaded.files.reduce((s, f) => s + f.records, 0),
    usable: built ? built.examples.length : loaded.examples.length,
    skipped: {
      total: skipped.length,
      byCode: tally(skipped.map((s) => s.code)),
      rows: skipped.slice(0, maxListed),
    },
    duplicates: {
      total: loaded.duplicates.length,
      dropped: loaded.duplicatesDropped,
      rows: loaded.duplicates.slice(0, maxListed),
    },
    emptyFields: tally(
      skipped.flatMap((s) => (s.code === 'empty-field' && s.field ? [s.field] : [])),
    ) as Record<string, number>,
    maxListed,
  };
  if (built) {
    // Per-file usable/skipped counts include the rows dropped while tokenizing.
    for (const s of built.skipped) {
      const f = report.files.find((x) => x.path === s.source.file);
      if (f) {
        f.usable--;
        f.skipped++;
      }
    }
    report.tokens = tokenReport(built, files, maxListed);
  }
  if (Object.keys(categories).length) report.categories = categories;
  if (parts.heldOut) report.heldOut = parts.heldOut;
  if (parts.batches) report.batches = parts.batches;
  return report;
}

const FORMAT_NAMES: Record<DatasetFormat, string> = {
  alpaca: 'alpaca',
  dolly: 'dolly',
  sharegpt: 'sharegpt',
  messages: 'messages (OpenAI)',
};

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
const count = (n: number, one: string, many = `${one}s`) =>
  `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

/** The report as text for a terminal. */
export function formatReport(report: DatasetReport): string {
  const out: string[] = [];
  const more = (shown: number, total: number) => {
    if (total > shown) out.push(`    ... and ${(total - shown).toLocaleString('en-US')} more`);
  };

  out.push(`Dataset: ${count(report.files.length, 'file')}`);
  const width = Math.max(...report.files.map((f) => f.path.length));
  const formats = report.files.map(
    (f) => `${FORMAT_NAMES[f.format]} (${f.formatDetected ? 'detected' : 'given'})`,
  );
  const formatWidth = Math.max(...formats.map((f) => f.length));
  report.files.forEach((f, i) => {
    out.push(
      `  ${f.path.padEnd(width)}  ${f.container.padEnd(5)}  ${formats[i].padEnd(formatWidth)}  ` +
        `${count(f.records, 'record')}, ${f.usable.toLocaleString('en-US')} usable, ${f.skipped.toLocaleString('en-US')} skipped`,
    );
  });
  out.push(
    `Records: ${report.records.toLocaleString('en-US')}, usable: ${report.usable.toLocaleString('en-US')}, ` +
      `skipped: ${report.skipped.total.toLocaleString('en-US')}`,
  );
  if (report.usable === 0) out.push('  No usable examples: nothing to train on.');

  if (report.skipped.total) {
    const reasons = Object.entries(report.skipped.byCode)
      .sort((a, b) => b[1]! - a[1]!)
      .map(([code, n]) => `${code} ${n}`)
      .join(', ');
    out.push('', `Skipped rows (${reasons}):`);
    for (const s of report.skipped.rows) out.push(`  ${where(s)}: ${s.reason}`);
    more(report.skipped.rows.length, report.skipped.total);
  }
  const empty = Object.entries(report.emptyFields);
  if (empty.length) {
    out.push('', `Empty required fields: ${empty.map(([field, n]) => `${field} ${n}`).join(', ')}`);
  }
  if (report.duplicates.total) {
    out.push(
      '',
      `Duplicates: ${count(report.duplicates.total, 'record')} ${report.duplicates.total === 1 ? 'repeats' : 'repeat'} an earlier conversation ` +
        `(${report.duplicates.dropped ? 'left out' : 'kept; they weigh more in training'}):`,
    );
    for (const d of report.duplicates.rows) {
      out.push(`  ${d.source.file}:${d.source.line} repeats ${d.first.file}:${d.first.line}`);
    }
    more(report.duplicates.rows.length, report.duplicates.total);
  }
  if (report.categories) {
    const cats = Object.entries(report.categories).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    out.push('', `Categories: ${cats.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  }

  const t = report.tokens;
  if (t) {
    out.push(
      '',
      `Tokens (template ${t.template}, cutoffLen ${t.cutoffLen}, loss on ${t.trainOnInputs ? 'all tokens' : 'responses only'}):`,
      `  length per example: min ${t.min}, median ${t.median}, mean ${t.mean.toFixed(1)}, max ${t.max}`,
    );
    const peak = Math.max(1, ...t.histogram.map((h) => h.count));
    const labels = t.histogram.map((h, i) =>
      h.upTo === null ? `> ${t.cutoffLen}` : `${i === 0 ? 1 : t.histogram[i - 1].upTo! + 1}-${h.upTo}`,
    );
    const labelWidth = Math.max(...labels.map((l) => l.length));
    t.histogram.forEach((h, i) => {
      const bar = '#'.repeat(Math.round((40 * h.count) / peak));
      out.push(`  ${labels[i].padStart(labelWidth)}  ${String(h.count).padStart(7)}  ${bar}`);
    });
    out.push(`  ${count(t.truncated, 'example')} truncated at cutoffLen ${t.cutoffLen}`);
    for (const s of t.truncatedRows) out.push(`    ${s.file}:${s.line}`);
    more(t.truncatedRows.length, t.truncated);
    if (t.truncatedAway) out.push(`  ${count(t.truncatedAway, 'example')} left out: no response token fits`);
    if (t.piecewise) {
      out.push(
        `  ${count(t.piecewise, 'example')} tokenized piece by piece (a token spanned prompt and response)`,
      );
    }
    if (t.lastTurnOnly) {
      out.push(
        `  ${count(t.lastTurnOnly, 'conversation')}: only the last assistant turn trained (the chat template rewrites earlier turns)`,
      );
    }
    out.push(
      `  ${t.tokens.toLocaleString('en-US')} tokens, ${t.trainedTokens.toLocaleString('en-US')} of them trained (${percent(
        t.tokens ? t.trainedTokens / t.tokens : 0,
      )})`,
    );
  }
  if (report.heldOut) {
    out.push('', `Held out for evaluation: ${report.heldOut.heldOut}, training: ${report.heldOut.train}`);
  }
  const b = report.batches;
  if (b) {
    out.push(
      '',
      `Batches: ${count(b.batches, 'batch', 'batches')} of ${b.batchSize} rows ` +
        `(${b.rows === b.examples ? count(b.examples, 'example') : `${count(b.rows, 'row')} packed from ${count(b.examples, 'example')}`}), ` +
        `buckets ${b.byBucket.map((x) => `${x.seq}×${x.batches}`).join(', ')}`,
      `  padding efficiency ${percent(b.paddingEfficiency)} (${percent(b.unbucketedEfficiency)} with every batch at the longest bucket)`,
    );
  }
  return out.join('\n') + '\n';
}
