// `npm run demo` / `fedit demo`: the product's main job, on this machine. A coordinator and several
// participants on loopback, the built-in base model (pretrained by fedit's own engine), built-in
// instruction tasks split non-IID across participants (each holds only some task categories, like
// Shepherd's category-sharded Dolly), several FedIT rounds with SCAFFOLD (or, with `secure`, under
// secure aggregation: DEMO_SECURE_RULE) through the real protocol, crypto and
// round log — then the federated global adapter against each participant's local-only adapter on
// every category, and the audit's verdict.
//
// runDemo reads as those phases; the federation itself is demo-federation.ts, the tables
// demo-table.ts, the federation's settings federation-settings.ts.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_ADAMW, Trainer, loadCheckpoint, loadTokenizer } from '@fedit/kernels';
import { auditFederation } from '@fedit/shared';
import { prepareDataset, sequenceBuckets } from '../core/data/index.ts';
import { evaluateRows } from '../core/train/local-training.ts';
import { defaultDemoCacheDir, ensureDemoBaseModel } from './base-model.ts';
import { runDemoFederation } from './demo-federation.ts';
import { DEMO_ROUNDS } from './demo-rounds.ts';
import { gapInWords } from '../simulate/report.ts';
import { comparisonHeader, comparisonRow, pct, type DemoRound } from './demo-table.ts';
import { taskAccuracy, type TaskAccuracy } from './evaluate.ts';
import { demoSplit, toJsonl, TASK_CATEGORIES, type DemoSplit, type TaskRecord } from './tasks.ts';
import { DEMO_LORA, DEMO_TRAINING, trainDemoAdapter } from './train.ts';
import { DEMO_RULE, DEMO_SECURE_RULE } from './federation-settings.ts';

export interface DemoOptions {
  /** Where the federation folder and the participants' folders go. */
  dir: string;
  participants?: number;
  rounds?: number;
  threads?: number;
  /** Secure aggregation (the `secure` rule preset): the coordinator unmasks only each round's sum. */
  secure?: boolean;
  cacheDir?: string;
  /** Lines for a person, as they happen. */
  print?: (line: string) => void;
}

export type { DemoRound };

export interface DemoResult {
  federationDir: string;
  rounds: DemoRound[];
  baseAccuracy: TaskAccuracy;
  global: TaskAccuracy;
  localOnly: LocalOnlyAdapter[];
  /** One adapter trained on every participant's data together, with the federation's total steps. */
  pooled: TaskAccuracy;
  auditOk: boolean;
  seconds: number;
}

export interface LocalOnlyAdapter {
  name: string;
  categories: string[];
  accuracy: TaskAccuracy;
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const started = performance.now();
  const print = o.print ?? (() => {});
  const n = o.participants ?? 3;
  const rounds = o.rounds ?? DEMO_ROUNDS;
  const threads = o.threads ?? 1;
  const root = resolve(o.dir);
  mkdirSync(root, { recursive: true });

  print(
    'fedit demo: a federation of ' +
      `${n} participants on this machine, ${rounds} FedIT rounds ${o.secure ? 'under secure aggregation (the coordinator sees only the sums)' : 'with SCAFFOLD'}\n`,
  );
  print("1. the built-in base model (pretrained by fedit's own engine on first use, then cached)");
  const modelDir = await ensureDemoBaseModel(o.cacheDir ?? defaultDemoCacheDir(), {
    threads,
    onProgress: (p) =>
      p.step % 200 === 0 && print(`   pretraining: step ${p.step}/${p.steps}, loss ${p.loss.toFixed(3)}`),
  });
  print(`   ${modelDir}`);

  const split = demoSplit({ participants: n, categoriesPerParticipant: 2 });
  const evalFile = join(root, 'evaluation.jsonl');
  writeFileSync(evalFile, toJsonl(split.evaluation));
  print(
    `2. built-in tasks, non-IID: ${split.participants.map((p) => `${p.name} holds ${p.categories.join(' + ')}`).join('; ')}`,
  );
  print(
    `   held-out evaluation: ${split.evaluation.length} tasks over all ${TASK_CATEGORIES.length} categories`,
  );
  const heldOutLoss = await heldOutEvaluator(modelDir, evalFile, threads);
  const baseAccuracy = await taskAccuracy({ modelDir, examples: split.evaluation, threads });
  print(`   the base model alone: ${pct(baseAccuracy.overall.accuracy)} of the held-out tasks right\n`);

  const fedDir = join(root, 'federation');
  const table = await runDemoFederation({
    root,
    fedDir,
    modelDir,
    split,
    rounds,
    threads,
    rule: o.secure ? DEMO_SECURE_RULE : DEMO_RULE,
    print,
    heldOutLoss,
  });

  print('\n4. the honest baselines: each participant alone (the steps it spent), and all data pooled');
  print('   in one place (the steps the whole federation spent)');
  const localOnly = await localOnlyAdapters(modelDir, split, rounds, threads);
  const pooled = await pooledAdapter(modelDir, split, rounds, threads);
  const global = table.at(-1)!.accuracy;
  printComparison(print, { base: baseAccuracy, localOnly, pooled, global });

  const audit = await auditFederation(fedDir);
  print(
    `\n5. audit of ${fedDir}: ${audit.ok ? 'the log verifies' : 'FAILED'} — ${audit.records} records, ${audit.rounds.filter((r) => r.aggregation === 'verified').length} of ${audit.rounds.length} aggregates recomputed and matching`,
  );
  print(`   check it yourself: npm run fedit -- audit ${fedDir}`);
  const seconds = (performance.now() - started) / 1000;
  print(`\ndone in ${seconds.toFixed(0)} s`);
  return {
    federationDir: fedDir,
    rounds: table,
    baseAccuracy,
    global,
    localOnly,
    pooled,
    auditOk: audit.ok,
    seconds,
  };
}

/** Each participant's adapter trained on its own data only, with the steps it spends in all rounds. */
async function localOnlyAdapters(
  modelDir: string,
  split: DemoSplit,
  rounds: number,
  threads: number,
): Promise<LocalOnlyAdapter[]> {
  const localOnly: LocalOnlyAdapter[] = [];
  for (const shard of split.participants) {
    const r = await trainDemoAdapter({
      modelDir,
      records: shard.train,
      settings: { steps: DEMO_TRAINING.steps * rounds },
      threads,
      seed: 7,
    });
    const accuracy = await taskAccuracy({
      modelDir,
      adapter: { config: DEMO_LORA, tensors: r.tensors },
      examples: split.evaluation,
      threads,
    });
    localOnly.push({ name: shard.name, categories: shard.categories, accuracy });
  }
  return localOnly;
}

/** One adapter on all participants' data together: what the federation would learn if data could move. */
async function pooledAdapter(
  modelDir: string,
  split: DemoSplit,
  rounds: number,
  threads: number,
): Promise<TaskAccuracy> {
  const r = await trainDemoAdapter({
    modelDir,
    records: split.participants.flatMap((p) => p.train),
    settings: { steps: DEMO_TRAINING.steps * rounds * split.participants.length },
    threads,
    seed: 7,
  });
  return taskAccuracy({
    modelDir,
    adapter: { config: DEMO_LORA, tensors: r.tensors },
    examples: split.evaluation,
    threads,
  });
}

/** The comparison table and a verdict that follows from its numbers. */
function printComparison(
  print: (line: string) => void,
  r: {
    base: TaskAccuracy;
    localOnly: readonly LocalOnlyAdapter[];
    pooled: TaskAccuracy;
    global: TaskAccuracy;
  },
): void {
  print('\n' + comparisonHeader());
  print(comparisonRow('base model', r.base));
  for (const l of r.localOnly) print(comparisonRow(`${l.name} alone`, l.accuracy));
  print(comparisonRow('pooled (all data)', r.pooled));
  print(comparisonRow('federated', r.global));
  print('\n' + demoVerdict(r.global, r.pooled, r.localOnly));
}

/**
 * What the table says, in one sentence: the federated adapter against pooled and the best alone
 * overall, then every category on which some participant's adapter alone does better than the
 * federated one (an overall gain can hide a skill the federation lost).
 */
export function demoVerdict(
  global: TaskAccuracy,
  pooled: TaskAccuracy,
  localOnly: readonly LocalOnlyAdapter[],
): string {
  // Points as the table prints them: each accuracy rounded, then the difference.
  const points = (a: number, b: number) => Math.round(100 * a) - Math.round(100 * b);
  const bestAlone = Math.max(...localOnly.map((l) => l.accuracy.overall.accuracy));
  const alone = gapInWords(points(global.overall.accuracy, bestAlone), 'the best participant alone');
  const pool = gapInWords(points(global.overall.accuracy, pooled.overall.accuracy), 'pooled training');
  const overall = `the federated adapter is ${alone} and ${pool} (all on the held-out tasks of every category)`;
  const worse = Object.entries(global.byCategory).flatMap(([category, federated]) => {
    const best = localOnly
      .map((l) => ({ name: l.name, accuracy: l.accuracy.byCategory[category]?.accuracy ?? 0 }))
      .reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    return points(best.accuracy, federated.accuracy) > 0
      ? [
          `on ${category}, ${best.name} alone scores ${pct(best.accuracy).trim()} against its ${pct(federated.accuracy).trim()}`,
        ]
      : [];
  });
  return worse.length === 0
    ? `${overall}; no participant alone does better on any category`
    : `${overall}; but ${worse.join(', and ')}`;
}

/** Held-out loss of an adapter on the evaluation tasks, on the tokens training sees. */
async function heldOutEvaluator(modelDir: string, evalFile: string, threads: number) {
  const model = await loadCheckpoint(modelDir);
  const tokenizer = await loadTokenizer(modelDir);
  const prepared = await prepareDataset([{ path: evalFile, format: 'dolly' }], {
    tokens: { tokenizer, template: 'chat', cutoffLen: DEMO_TRAINING.cutoffLen },
  });
  const rows = prepared.rows!.train;
  const buckets = sequenceBuckets(DEMO_TRAINING.cutoffLen);
  return async (tensors: ReadonlyMap<string, Float32Array>) => {
    const trainer = await Trainer.create({
      model: model.config,
      weights: model.store,
      lora: DEMO_LORA,
      initial: tensors,
      batch: DEMO_TRAINING.batchSize,
      seq: Math.max(...buckets),
      seqBuckets: buckets,
      optimizer: DEFAULT_ADAMW,
      seed: 0,
      evalOnly: true,
      threads,
    });
    try {
      return (await evaluateRows(trainer, rows, DEMO_TRAINING.batchSize)).loss;
    } finally {
      await trainer.release();
    }
  };
}

export type { TaskRecord };
