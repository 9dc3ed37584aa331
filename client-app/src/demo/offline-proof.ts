// The demo's learning signal, offline: everything the federated demo will show, without a network
// or a coordinator. The built-in base model is pretrained (or taken from the cache), then
//
//   base          the base model alone on the held-out tasks of every category;
//   pooled        one LoRA adapter trained on everybody's data together (what a central party with
//                 all the data could do), for as many steps as the whole federation trains;
//   local-only    each participant's adapter trained on its own shard only, for as many steps as
//                 that participant trains over all rounds of the federation;
//   FedIT rounds  each round every participant trains from the current global adapter on its own
//                 shard, and the sample-weighted mean of their LoRA tensors becomes the new global
//                 adapter (FedIT's rule, A and B averaged separately).
//
// Run it: node --conditions=source --import tsx client-app/src/demo/offline-proof.ts [--quick]

import { pathToFileURL } from 'node:url';
import { initLoraTensors, loadCheckpoint, uniformSampler } from '@fedit/kernels';
import { ensureDemoBaseModel, defaultDemoCacheDir, type PretrainProgress } from './base-model.ts';
import { taskAccuracy, type TaskAccuracy } from './evaluate.ts';
import { demoSplit, TASK_CATEGORIES, type DemoSplit, type TaskCategory } from './tasks.ts';
import { DEMO_TRAINING, trainDemoAdapter, weightedMeanAdapters, type DemoTrainingSettings } from './train.ts';

export interface OfflineProofOptions {
  /** The base model folder; default: the built-in one, pretrained into `cacheDir` if needed. */
  modelDir?: string;
  cacheDir?: string;
  participants?: number;
  categoriesPerParticipant?: number;
  trainPerCategory?: number;
  evalPerCategory?: number;
  rounds?: number;
  /** Local training per participant per round (steps, lr, ...). */
  settings?: Partial<DemoTrainingSettings>;
  /** Also train the pooled and local-only baselines (default true). */
  baselines?: boolean;
  seed?: number;
  threads?: number;
  log?: (line: string) => void;
  onPretrainProgress?: (p: PretrainProgress) => void;
}

export interface ProofRow {
  label: string;
  accuracy: TaskAccuracy;
}

export interface OfflineProofResult {
  modelDir: string;
  split: DemoSplit;
  base: ProofRow;
  pooled?: ProofRow;
  localOnly: (ProofRow & { categories: TaskCategory[] })[];
  rounds: (ProofRow & { round: number; trainSeconds: number })[];
  seconds: { pretrain: number; total: number };
}

export async function runOfflineProof(o: OfflineProofOptions = {}): Promise<OfflineProofResult> {
  const started = performance.now();
  const log = o.log ?? (() => {});
  const settings: DemoTrainingSettings = { ...DEMO_TRAINING, ...o.settings };
  const rounds = o.rounds ?? 8;
  const seed = o.seed ?? 0;
  const modelDir =
    o.modelDir ??
    (await ensureDemoBaseModel(o.cacheDir ?? defaultDemoCacheDir(), {
      threads: o.threads,
      onProgress: o.onPretrainProgress,
    }));
  const pretrainSeconds = (performance.now() - started) / 1000;
  const split = demoSplit({
    participants: o.participants,
    categoriesPerParticipant: o.categoriesPerParticipant,
    trainPerCategory: o.trainPerCategory,
    evalPerCategory: o.evalPerCategory,
  });
  const examples = split.evaluation;
  const accuracyOf = (tensors?: ReadonlyMap<string, Float32Array>) =>
    taskAccuracy({
      modelDir,
      examples,
      adapter: tensors && { config: settings.lora, tensors },
      threads: o.threads,
    });

  const base: ProofRow = { label: 'base model', accuracy: await accuracyOf() };
  log(formatRow(base));

  let pooled: ProofRow | undefined;
  const localOnly: OfflineProofResult['localOnly'] = [];
  if (o.baselines ?? true) {
    // Same compute as the whole federation: every participant's steps of every round.
    const steps = rounds * settings.steps * split.participants.length;
    const r = await trainDemoAdapter({
      modelDir,
      records: split.participants.flatMap((p) => p.train),
      settings: { ...settings, steps },
      seed,
      threads: o.threads,
    });
    pooled = { label: `pooled data (${steps} steps)`, accuracy: await accuracyOf(r.tensors) };
    log(`${formatRow(pooled)}   [${r.seconds.toFixed(1)} s]`);
    for (const p of split.participants) {
      // Same compute as this participant spends in the federation.
      const r = await trainDemoAdapter({
        modelDir,
        records: p.train,
        settings: { ...settings, steps: rounds * settings.steps },
        seed,
        threads: o.threads,
      });
      const row = {
        label: `${p.name} alone (${p.categories.join('+')})`,
        categories: p.categories,
        accuracy: await accuracyOf(r.tensors),
      };
      localOnly.push(row);
      log(`${formatRow(row)}   [${r.seconds.toFixed(1)} s]`);
    }
  }

  // FedIT: everybody starts from the same initial global adapter (PEFT's initialisation).
  const { config } = await loadCheckpoint(modelDir);
  let global = initLoraTensors(config, settings.lora, uniformSampler(seed)) as Map<string, Float32Array>;
  const fedRounds: OfflineProofResult['rounds'] = [];
  for (let round = 1; round <= rounds; round++) {
    const t = performance.now();
    const updates = [];
    for (const [i, p] of split.participants.entries()) {
      updates.push(
        await trainDemoAdapter({
          modelDir,
          records: p.train,
          initial: global,
          settings,
          seed: seed + 1000 * round + i,
          threads: o.threads,
        }),
      );
    }
    global = weightedMeanAdapters(updates);
    const row = {
      label: `FedIT round ${round}`,
      round,
      trainSeconds: (performance.now() - t) / 1000,
      accuracy: await accuracyOf(global),
    };
    fedRounds.push(row);
    log(`${formatRow(row)}   [${row.trainSeconds.toFixed(1)} s]`);
  }
  return {
    modelDir,
    split,
    base,
    pooled,
    localOnly,
    rounds: fedRounds,
    seconds: { pretrain: pretrainSeconds, total: (performance.now() - started) / 1000 },
  };
}

const pct = (x: number) => `${Math.round(100 * x)}%`.padStart(5);

export function formatHeader(categories: readonly string[] = TASK_CATEGORIES): string {
  return `${'adapter'.padEnd(42)}${categories.map((c) => c.slice(0, 7).padStart(8)).join('')}${'all'.padStart(8)}`;
}

export function formatRow(row: ProofRow, categories: readonly string[] = TASK_CATEGORIES): string {
  const cells = categories.map((c) => pct(row.accuracy.byCategory[c]?.accuracy ?? 0).padStart(8));
  return `${row.label.padEnd(42)}${cells.join('')}${pct(row.accuracy.overall.accuracy).padStart(8)}`;
}

/** The whole table: header, base, baselines, rounds. */
export function formatProof(r: OfflineProofResult): string {
  const rows: ProofRow[] = [r.base, ...(r.pooled ? [r.pooled] : []), ...r.localOnly, ...r.rounds];
  return [formatHeader(), ...rows.map((row) => formatRow(row))].join('\n');
}

async function main() {
  const quick = process.argv.includes('--quick');
  console.log(formatHeader());
  const r = await runOfflineProof({
    log: (line) => console.log(line),
    onPretrainProgress: (p) => {
      if (p.step % 200 === 0 || p.step === p.steps)
        console.log(`  pretraining the base model: step ${p.step}/${p.steps}, loss ${p.loss.toFixed(3)}`);
    },
    ...(quick ? { rounds: 3 } : {}),
  });
  const fed = r.rounds.at(-1)!.accuracy.overall.accuracy;
  const bestLocal = Math.max(...r.localOnly.map((l) => l.accuracy.overall.accuracy));
  console.log(
    `\nFedIT after ${r.rounds.length} rounds: ${pct(fed).trim()} of the held-out tasks of all categories; ` +
      `best local-only adapter ${pct(bestLocal).trim()}; pooled data ${pct(r.pooled?.accuracy.overall.accuracy ?? NaN).trim()}; ` +
      `base model ${pct(r.base.accuracy.overall.accuracy).trim()}`,
  );
  console.log(
    `base model ${r.modelDir} (${r.seconds.pretrain.toFixed(1)} s to pretrain or find), total ${r.seconds.total.toFixed(1)} s`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main();
}
