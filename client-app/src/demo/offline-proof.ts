// The demo's learning signal, offline: everything the federated demo will show, without a network
// or a coordinator. The built-in base model is pretrained (or taken from the cache), then
//
//   base          the base model alone on the held-out tasks of every category;
//   pooled        one LoRA adapter trained on everybody's data together (what a central party with
//                 all the data could do), for as many steps as the whole federation trains;
//   local-only    each participant's adapter trained on its own shard only, for as many steps as
//                 that participant trains over all rounds of the federation;
//   FedIT rounds  each round every participant trains from the current global adapter on its own
//                 shard, and the round closes as the federation's does: the demo federation's rule
//                 (FedIT: the example-weighted mean, A and B averaged separately) through shared's
//                 aggregateContributions, computed exactly as the coordinator computes it.
//
// Run it: node --conditions=source --import tsx client-app/src/demo/offline-proof.ts [--quick]

import { pathToFileURL } from 'node:url';
import { initLoraTensors, loadCheckpoint, uniformSampler } from '@fedit/kernels';
import { ensureDemoBaseModel, defaultDemoCacheDir, type PretrainProgress } from './base-model.ts';
import { taskAccuracy, type TaskAccuracy } from './evaluate.ts';
import { aggregateOfflineRound, loraAdapterSchema, type OfflineUpdate } from './offline-aggregate.ts';
import { demoSplit, TASK_CATEGORIES, type DemoSplit, type TaskCategory } from './tasks.ts';
import { DEMO_TRAINING, trainDemoAdapter, type DemoTrainingSettings } from './train.ts';

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
  const modelDir =
    o.modelDir ??
    (await ensureDemoBaseModel(o.cacheDir ?? defaultDemoCacheDir(), {
      threads: o.threads,
      onProgress: o.onPretrainProgress,
    }));
  const pretrainSeconds = (performance.now() - started) / 1000;
  const proof = proofContext(modelDir, o);

  const base: ProofRow = { label: 'base model', accuracy: await proof.accuracyOf() };
  proof.log(formatRow(base));
  const baselines = (o.baselines ?? true) ? await trainBaselines(proof) : { localOnly: [] };
  const rounds = await fedItRounds(proof);
  return {
    modelDir,
    split: proof.split,
    base,
    ...baselines,
    rounds,
    seconds: { pretrain: pretrainSeconds, total: (performance.now() - started) / 1000 },
  };
}

/** What every part of the proof shares: the model, the split, the settings, how an adapter scores. */
interface ProofContext {
  modelDir: string;
  split: DemoSplit;
  settings: DemoTrainingSettings;
  rounds: number;
  seed: number;
  threads?: number;
  log: (line: string) => void;
  /** Accuracy on the held-out tasks of every category, of the base model with `tensors` (or alone). */
  accuracyOf: (tensors?: ReadonlyMap<string, Float32Array>) => Promise<TaskAccuracy>;
}

function proofContext(modelDir: string, o: OfflineProofOptions): ProofContext {
  const settings: DemoTrainingSettings = { ...DEMO_TRAINING, ...o.settings };
  const split = demoSplit({
    participants: o.participants,
    categoriesPerParticipant: o.categoriesPerParticipant,
    trainPerCategory: o.trainPerCategory,
    evalPerCategory: o.evalPerCategory,
  });
  return {
    modelDir,
    split,
    settings,
    rounds: o.rounds ?? 8,
    seed: o.seed ?? 0,
    threads: o.threads,
    log: o.log ?? (() => {}),
    accuracyOf: (tensors) =>
      taskAccuracy({
        modelDir,
        examples: split.evaluation,
        adapter: tensors && { config: settings.lora, tensors },
        threads: o.threads,
      }),
  };
}

/** The baselines, each with the compute it has in the federation: pooled data, and each shard alone. */
async function trainBaselines(
  proof: ProofContext,
): Promise<Pick<OfflineProofResult, 'pooled' | 'localOnly'>> {
  const { modelDir, split, settings, rounds, seed, threads, log } = proof;
  // Same compute as the whole federation: every participant's steps of every round.
  const steps = rounds * settings.steps * split.participants.length;
  const all = await trainDemoAdapter({
    modelDir,
    records: split.participants.flatMap((p) => p.train),
    settings: { ...settings, steps },
    seed,
    threads,
  });
  const pooled = { label: `pooled data (${steps} steps)`, accuracy: await proof.accuracyOf(all.tensors) };
  log(`${formatRow(pooled)}   [${all.seconds.toFixed(1)} s]`);
  const localOnly: OfflineProofResult['localOnly'] = [];
  for (const p of split.participants) {
    // Same compute as this participant spends in the federation.
    const r = await trainDemoAdapter({
      modelDir,
      records: p.train,
      settings: { ...settings, steps: rounds * settings.steps },
      seed,
      threads,
    });
    const row = {
      label: `${p.name} alone (${p.categories.join('+')})`,
      categories: p.categories,
      accuracy: await proof.accuracyOf(r.tensors),
    };
    localOnly.push(row);
    log(`${formatRow(row)}   [${r.seconds.toFixed(1)} s]`);
  }
  return { pooled, localOnly };
}

/**
 * FedIT without a network: each round every participant trains from the global adapter on its own
 * shard, and the round closes as the federation's does (offline-aggregate.ts).
 */
async function fedItRounds(proof: ProofContext): Promise<OfflineProofResult['rounds']> {
  const { modelDir, split, settings, seed, threads, log } = proof;
  // Everybody starts from the same initial global adapter (PEFT's initialisation).
  const { config } = await loadCheckpoint(modelDir);
  const schema = loraAdapterSchema(config, settings.lora);
  let global = initLoraTensors(config, settings.lora, uniformSampler(seed));
  const rows: OfflineProofResult['rounds'] = [];
  for (let round = 1; round <= proof.rounds; round++) {
    const t = performance.now();
    const updates: OfflineUpdate[] = [];
    for (const [i, p] of split.participants.entries()) {
      const r = await trainDemoAdapter({
        modelDir,
        records: p.train,
        initial: global,
        settings,
        seed: seed + 1000 * round + i,
        threads,
      });
      updates.push({ participant: p.name, tensors: r.tensors, examples: r.examples });
    }
    global = aggregateOfflineRound(schema, updates);
    const row = {
      label: `FedIT round ${round}`,
      round,
      trainSeconds: (performance.now() - t) / 1000,
      accuracy: await proof.accuracyOf(global),
    };
    rows.push(row);
    log(`${formatRow(row)}   [${row.trainSeconds.toFixed(1)} s]`);
  }
  return rows;
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
