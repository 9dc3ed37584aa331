// One simulation: a dataset split (seeded) across N participants, a federation of them on loopback
// through the real protocol (federation.ts) under one rule, and the two baselines a federation is
// measured against, with the same model and local-training settings:
//
// - pooled: one adapter trained on the union of every participant's training data, with as many
//   optimizer steps as the whole federation spent (participants x rounds x localSteps);
// - alone: each participant's adapter trained on its own data only, with the steps it spent in the
//   federation (rounds x localSteps).
//
// Every adapter is scored by exact match on each of the dataset's held-out evaluation sets, overall
// and per category. Under attack, on the categories the honest participants hold only (scoredSets):
// a category only the attacker trains is not the federation's to learn, and counting it would charge
// a rule that leaves the attacker out for exactly that. The baselines depend on the seed and the
// shared settings only, not on the rule: a bench of several rules computes them once per seed
// (runBaselines) and runs the federation once per rule (runFederated).

import type { SettingsPatch } from './presets.ts';
import { FeditError, ruleTakesLowerRanks } from '@fedit/shared';
import { join } from 'node:path';
import type { FederationSettings } from '@fedit/coordinator';
import type { LoraConfig } from '@fedit/kernels';
import { taskAccuracy, type TaskAccuracy } from '../demo/evaluate.ts';
import { trainDemoAdapter } from '../demo/train.ts';
import type { Attack } from './adversary.ts';
import type { EvaluationSet, SimulationDataset } from './dataset.ts';
import { runLoopbackFederation, type ClosedRound } from './federation.ts';
import { simulationSettings } from './presets.ts';
import { splitByCategory, type ParticipantShard, type SplitSpec } from './split.ts';

export interface SimulationOptions {
  modelDir: string;
  dataset: SimulationDataset;
  split: SplitSpec;
  participants: number;
  rounds: number;
  /** Seeds the split, the initial adapter, the identities (hence data orders) and the baselines. */
  seed: number;
  /** The rule's name, for the tables. */
  rule: string;
  /** Merged over the demo federation's settings (presets.ts): how a rule is chosen. */
  settings?: SettingsPatch;
  /** Where this run's federation and participants' folders go (created; must not hold a federation). */
  workDir: string;
  threads?: number;
  /** Evaluate the global adapter after every round (default), or only after the last. */
  evalEveryRound?: boolean;
  /**
   * One participant (0-based index) poisons its updates (adversary.ts). The federation then needs
   * n - 1 updates a round (unless the settings say otherwise), so that a refused poisoned update
   * does not abort the round. The baselines stay clean.
   */
  attack?: Attack & { participant: number };
  /**
   * Each participant's own LoRA rank, in participant order (client join --rank): a participant
   * with less memory trains a lower rank, under a rule that takes it (product-svd). Default: the
   * federation's rank for everyone. Participants alone train at their own rank too.
   */
  ranks?: readonly number[];
  log?: (line: string) => void;
}

/** Accuracy on each evaluation set, by the set's name. */
export type Accuracies = Record<string, TaskAccuracy>;

export interface ShardSummary {
  name: string;
  categories: string[];
  examples: number;
}

export interface FederatedRound {
  round: number;
  adapterHash: string;
  updates: number;
  trainLoss: number;
  /** Absent for rounds not evaluated (evalEveryRound false). */
  accuracy?: Accuracies;
}

export interface FederatedRun {
  rule: string;
  seed: number;
  rounds: FederatedRound[];
  /** The last round's global adapter. */
  final: Accuracies;
  seconds: number;
  /** Bytes of one adapter or update as F32 tensors. */
  adapterBytes: number;
  /**
   * Estimate: every participant downloads the global adapter and uploads an update of its rank
   * (r_k / r of the adapter's bytes; no envelope overhead).
   */
  bytesPerRound: number;
}

export interface TrainedBaseline {
  name: string;
  categories: string[];
  examples: number;
  steps: number;
  accuracy: Accuracies;
  seconds: number;
}

export interface Baselines {
  seed: number;
  base: Accuracies;
  pooled: TrainedBaseline;
  alone: TrainedBaseline[];
}

export interface SimulationResult {
  shards: ShardSummary[];
  federated: FederatedRun;
  baselines: Baselines;
}

/** The seeded split of the simulation's training data, and the settings its federation runs with. */
export function simulationPlan(o: SimulationOptions) {
  const shards = splitByCategory(o.dataset.train, {
    participants: o.participants,
    split: o.split,
    seed: o.seed,
  });
  const attacked = o.attack ? { minUpdates: Math.max(1, o.participants - 1), ...o.settings } : o.settings;
  const settings = simulationSettings(o.participants, o.rounds, attacked);
  if (o.attack && !(o.attack.participant >= 0 && o.attack.participant < o.participants)) {
    throw new FeditError(
      'SIMULATION_OPTIONS',
      `attack.participant must be 0 to ${o.participants - 1}, got ${o.attack.participant}`,
    );
  }
  const ranks = participantRanks(o, settings);
  const members = shards.map((s, i) => ({
    ...s,
    ...(o.attack?.participant === i ? { attack: o.attack } : {}),
    ...(ranks[i] === settings.lora!.rank ? {} : { rank: ranks[i] }),
  }));
  return { shards, members, settings, ranks, scored: scoredSets(o.dataset, shards, o.attack?.participant) };
}

/**
 * The evaluation sets a run is scored on: the dataset's, or with an attacker (its index in
 * `shards`), each set's records of the categories some other participant holds, in the set's order.
 * Throws when that leaves a set with no record.
 */
export function scoredSets(
  dataset: SimulationDataset,
  shards: readonly ParticipantShard[],
  attacker: number | undefined,
): EvaluationSet[] {
  if (attacker === undefined) return dataset.evaluations;
  const honest = new Set(shards.flatMap((s, i) => (i === attacker ? [] : s.categories)));
  return dataset.evaluations.map((set) => {
    const records = set.records.filter((r) => honest.has(r.category));
    if (records.length === 0) {
      throw new FeditError(
        'SIMULATION_OPTIONS',
        `evaluation set '${set.name}' holds no record of the categories the honest participants hold (${[...honest].join(', ')}); nothing would measure the attack`,
      );
    }
    return { name: set.name, records };
  });
}

/** Federation and baselines for one rule and seed. */
export async function runSimulation(o: SimulationOptions): Promise<SimulationResult> {
  const { shards } = simulationPlan(o);
  const federated = await runFederated(o);
  const baselines = await runBaselines(o);
  return { shards: summarizeShards(shards), federated, baselines };
}

export function summarizeShards(shards: readonly ParticipantShard[]): ShardSummary[] {
  return shards.map((s) => ({ name: s.name, categories: s.categories, examples: s.train.length }));
}

/** The federation of the seeded split under `o.settings`, evaluated as its rounds close. */
export async function runFederated(o: SimulationOptions): Promise<FederatedRun> {
  const started = performance.now();
  const { shards, members, settings, ranks, scored } = simulationPlan(o);
  const lora = loraOf(settings);
  const threads = o.threads ?? 1;
  // The baselines take any ranks; a federation only under a rule that aggregates them exactly.
  const rule = settings.aggregation!.rule;
  if (ranks.some((rank) => rank < lora.rank) && !ruleTakesLowerRanks(rule)) {
    throw new FeditError(
      'SIMULATION_OPTIONS',
      `ranks ${ranks.join(',')}: rule ${o.rule} (${rule}) takes only the federation's rank ${lora.rank}; lower ranks need product-svd`,
    );
  }
  let adapterBytes = 0;
  let lastTensors: ReadonlyMap<string, Float32Array> = new Map();
  let aggregated = 0;
  const rounds = await runLoopbackFederation<FederatedRound>({
    root: o.workDir,
    fedDir: join(o.workDir, 'federation'),
    modelDir: o.modelDir,
    modelName: 'fedit simulation base',
    members,
    settings,
    seed: o.seed,
    seededIdentities: true,
    threads,
    onRefused: (name, round, reason) =>
      o.log?.(`  ${o.rule} seed ${o.seed}: round ${round}: ${name}'s update refused: ${reason}`),
    onAborted: (round, reason) => o.log?.(`  ${o.rule} seed ${o.seed}: round ${round} aborted: ${reason}`),
    onRound: async (closed: ClosedRound) => {
      adapterBytes = [...closed.tensors.values()].reduce((s, t) => s + t.byteLength, 0);
      lastTensors = closed.tensors;
      aggregated += 1; // round numbers also count aborted rounds, retried under the next number
      const last = aggregated === o.rounds;
      const accuracy =
        (o.evalEveryRound ?? true) || last
          ? await evaluateAdapter(o, scored, { config: lora, tensors: closed.tensors })
          : undefined;
      const row: FederatedRound = {
        round: closed.round,
        adapterHash: closed.adapterHash,
        updates: closed.updates,
        trainLoss: mean(closed.took.map((t) => t.trainLoss)),
        ...(accuracy ? { accuracy } : {}),
      };
      o.log?.(
        `  ${o.rule} seed ${o.seed}: round ${closed.round} (${closed.updates} updates)${accuracy ? `: ${accuracyLine(accuracy)}` : ''}`,
      );
      return row;
    },
  });
  // The last round is always evaluated, unless it aborted and an earlier one is the last adapter.
  const final =
    rounds.at(-1)!.accuracy ?? (await evaluateAdapter(o, scored, { config: lora, tensors: lastTensors }));
  return {
    rule: o.rule,
    seed: o.seed,
    rounds,
    final,
    seconds: (performance.now() - started) / 1000,
    adapterBytes,
    bytesPerRound:
      shards.length * adapterBytes + ranks.reduce((s, r) => s + (adapterBytes * r) / lora.rank, 0),
  };
}

/** The base model, the pooled adapter and each participant's local-only adapter, evaluated. */
export async function runBaselines(o: SimulationOptions): Promise<Baselines> {
  const { shards, settings, ranks, scored } = simulationPlan(o);
  const federationLora = loraOf(settings);
  const localSteps = settings.training!.localSteps;
  const train = async (
    name: string,
    categories: string[],
    records: ParticipantShard['train'],
    steps: number,
    rank = federationLora.rank,
  ) => {
    const lora = { ...federationLora, rank };
    const r = await trainDemoAdapter({
      modelDir: o.modelDir,
      records,
      settings: {
        lora,
        steps,
        batchSize: settings.training!.batchSize,
        lr: settings.training!.lr,
        cutoffLen: settings.training!.cutoffLen,
        schedule: 'constant',
      },
      seed: o.seed,
      threads: o.threads ?? 1,
    });
    const accuracy = await evaluateAdapter(o, scored, { config: lora, tensors: r.tensors });
    o.log?.(`  baselines seed ${o.seed}: ${name} (${steps} steps) ${accuracyLine(accuracy)}`);
    return { name, categories, examples: records.length, steps, accuracy, seconds: r.seconds };
  };
  const base = await evaluateAdapter(o, scored, undefined);
  const pooledRecords = shards.flatMap((s) => s.train);
  const allCategories = [...new Set(shards.flatMap((s) => s.categories))];
  const pooled = await train('pooled', allCategories, pooledRecords, shards.length * o.rounds * localSteps);
  const alone: TrainedBaseline[] = [];
  for (const [i, s] of shards.entries())
    alone.push(await train(`${s.name} alone`, s.categories, s.train, o.rounds * localSteps, ranks[i]));
  return { seed: o.seed, base, pooled, alone };
}

async function evaluateAdapter(
  o: SimulationOptions,
  sets: readonly EvaluationSet[],
  adapter: { config: LoraConfig; tensors: ReadonlyMap<string, Float32Array> } | undefined,
): Promise<Accuracies> {
  const out: Accuracies = {};
  for (const set of sets) {
    out[set.name] = await taskAccuracy({
      modelDir: o.modelDir,
      adapter,
      examples: set.records,
      threads: o.threads ?? 1,
    });
  }
  return out;
}

/** o.ranks checked (one per participant, each 1..r), or the federation's rank r for all. */
function participantRanks(o: SimulationOptions, settings: Partial<FederationSettings>): number[] {
  const federationRank = settings.lora!.rank;
  if (o.ranks === undefined) return Array.from({ length: o.participants }, () => federationRank);
  if (o.ranks.length !== o.participants) {
    throw new FeditError(
      'SIMULATION_OPTIONS',
      `ranks must give one rank per participant (${o.participants}), got ${o.ranks.length}`,
    );
  }
  o.ranks.forEach((rank, i) => {
    if (!Number.isSafeInteger(rank) || rank < 1 || rank > federationRank)
      throw new FeditError(
        'SIMULATION_OPTIONS',
        `ranks[${i}] must be a whole number from 1 to the federation's rank ${federationRank}, got ${rank}`,
      );
  });
  return [...o.ranks];
}

function loraOf(settings: Partial<FederationSettings>): LoraConfig {
  const l = settings.lora!;
  return { rank: l.rank, alpha: l.alpha, dropout: 0, targets: [...l.targets] as LoraConfig['targets'] };
}

function accuracyLine(a: Accuracies | undefined): string {
  if (!a) return '';
  return Object.entries(a)
    .map(([set, acc]) => `${set} ${(100 * acc.overall.accuracy).toFixed(0)}%`)
    .join(', ');
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}
