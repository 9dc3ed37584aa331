// Several rules over several seeds: what `npm run bench -- learning` and `fedit simulate` run. For
// each seed, the baselines once (they do not depend on the rule) and each rule's federation; then
// the summary (report.ts). Everything runs in this process, one model at a time.

import type { SettingsPatch } from './presets.ts';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Attack } from './adversary.ts';
import type { SimulationDataset } from './dataset.ts';
import { mergeSettings } from './presets.ts';
import { compactAll, summarize, type EvaluationSummary, type SeedRuns } from './report.ts';
import {
  runBaselines,
  runFederated,
  simulationPlan,
  summarizeShards,
  type SimulationOptions,
} from './simulation.ts';
import { categoriesOf, type SplitSpec } from './split.ts';

export interface RuleChoice {
  name: string;
  /** The rule's settings patch (over the common one). */
  settings: SettingsPatch;
}

export interface LearningBenchOptions {
  modelDir: string;
  /** The dataset of a seed: its held-out split may depend on the seed. */
  dataset: (seed: number) => Promise<SimulationDataset> | SimulationDataset;
  split: SplitSpec;
  participants: number;
  rounds: number;
  rules: readonly RuleChoice[];
  /** Applied to every rule and to the baselines (e.g. local steps or learning rate). */
  settings?: SettingsPatch;
  seeds: readonly number[];
  /** A folder per seed and rule goes under it. */
  workDir: string;
  threads?: number;
  evalEveryRound?: boolean;
  /** One participant poisons its updates in every rule's federation (the baselines stay clean). */
  attack?: Attack & { participant: number };
  /** Each participant's own LoRA rank (SimulationOptions.ranks), in every rule's federation. */
  ranks?: readonly number[];
  log?: (line: string) => void;
}

export interface LearningBenchResult {
  runs: SeedRuns[];
  evaluationSets: string[];
  summary: Record<string, EvaluationSummary>;
  seconds: number;
}

export async function runLearningBench(o: LearningBenchOptions): Promise<LearningBenchResult> {
  const started = performance.now();
  const runs: SeedRuns[] = [];
  let sets: string[] = [];
  for (const seed of o.seeds) {
    const dataset = await o.dataset(seed);
    sets = dataset.evaluations.map((e) => e.name);
    const common: SimulationOptions = {
      modelDir: o.modelDir,
      dataset,
      split: o.split,
      participants: o.participants,
      rounds: o.rounds,
      seed,
      rule: 'baselines',
      settings: o.settings ?? {},
      workDir: join(o.workDir, `seed-${seed}`),
      threads: o.threads,
      evalEveryRound: o.evalEveryRound,
      attack: o.attack,
      ranks: o.ranks,
      log: o.log,
    };
    const plan = simulationPlan(common);
    const shards = summarizeShards(plan.shards);
    o.log?.(
      `seed ${seed}: ${shards.map((s) => `${s.name} ${s.categories.join('+')} (${s.examples})`).join('; ')}`,
    );
    if (o.attack) {
      const scored = categoriesOf(plan.scored.flatMap((set) => set.records));
      o.log?.(
        `seed ${seed}: ${shards[o.attack.participant].name} attacks (${o.attack.kind}); every adapter is scored on the honest participants' categories: ${scored.join(', ')}`,
      );
    }
    const federated = [];
    for (const rule of o.rules) {
      const workDir = join(o.workDir, `seed-${seed}`, rule.name);
      mkdirSync(workDir, { recursive: true });
      federated.push(
        await runFederated({
          ...common,
          rule: rule.name,
          settings: mergeSettings(common.settings!, rule.settings),
          workDir,
        }),
      );
    }
    const baselines = await runBaselines(common);
    runs.push({ seed, shards, baselines, federated });
  }
  return {
    runs,
    evaluationSets: sets,
    summary: summarize(runs, sets),
    seconds: (performance.now() - started) / 1000,
  };
}

/** The result as JSON: accuracies as fractions, overall and per category; answers left out. */
export function learningBenchJson(r: LearningBenchResult) {
  return {
    evaluationSets: r.evaluationSets,
    summary: r.summary,
    runs: r.runs.map((run) => ({
      seed: run.seed,
      shards: run.shards,
      baselines: {
        base: compactAll(run.baselines.base),
        pooled: { ...run.baselines.pooled, accuracy: compactAll(run.baselines.pooled.accuracy) },
        alone: run.baselines.alone.map((a) => ({ ...a, accuracy: compactAll(a.accuracy) })),
      },
      federated: run.federated.map((f) => ({
        rule: f.rule,
        seconds: f.seconds,
        adapterBytes: f.adapterBytes,
        bytesPerRound: f.bytesPerRound,
        final: compactAll(f.final),
        rounds: f.rounds.map((x) => ({ ...x, ...(x.accuracy ? { accuracy: compactAll(x.accuracy) } : {}) })),
      })),
    })),
    seconds: r.seconds,
  };
}
