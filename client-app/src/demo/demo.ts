// `npm run demo` / `fedit demo`: the product's main job, on this machine. A coordinator and several
// participants on loopback, the built-in base model (pretrained by fedit's own engine), built-in
// instruction tasks split non-IID across participants (each holds only some task categories, like
// Shepherd's category-sharded Dolly), several FedIT rounds through the real protocol, crypto and
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
import { comparisonHeader, comparisonRow, pct, type DemoRound } from './demo-table.ts';
import { taskAccuracy, type TaskAccuracy } from './evaluate.ts';
import { demoSplit, toJsonl, TASK_CATEGORIES, type DemoSplit, type TaskRecord } from './tasks.ts';
import { DEMO_LORA, DEMO_TRAINING, trainDemoAdapter } from './train.ts';

export interface DemoOptions {
  /** Where the federation folder and the participants' folders go. */
  dir: string;
  participants?: number;
  rounds?: number;
  threads?: number;
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
  const rounds = o.rounds ?? 8;
  const threads = o.threads ?? 1;
  const root = resolve(o.dir);
  mkdirSync(root, { recursive: true });

  print('fedit demo: a federation of ' + `${n} participants on this machine, ${rounds} FedIT rounds\n`);
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
    print,
    heldOutLoss,
  });

  print('\n4. each participant alone, same number of steps on its own data only');
  const localOnly = await localOnlyAdapters(modelDir, split, rounds, threads);
  const global = table.at(-1)!.accuracy;
  printComparison(print, baseAccuracy, localOnly, global);

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

/** The comparison table and its verdict: does the federated adapter beat every local-only one? */
function printComparison(
  print: (line: string) => void,
  base: TaskAccuracy,
  localOnly: readonly LocalOnlyAdapter[],
  global: TaskAccuracy,
): void {
  print('\n' + comparisonHeader());
  print(comparisonRow('base model', base));
  for (const l of localOnly) print(comparisonRow(`${l.name} alone`, l.accuracy));
  print(comparisonRow('federated (FedIT)', global));
  const beats = localOnly.every((l) => global.overall.accuracy > l.accuracy.overall.accuracy);
  print(
    `\nfederated ${beats ? 'beats' : 'does NOT beat'} every local-only adapter on the held-out tasks of all categories`,
  );
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
