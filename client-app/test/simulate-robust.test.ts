// Robust rules against one poisoned participant, through the real federation on loopback (the demo
// base model loaded as every run loads it, real local training, signed uploads, the coordinator's
// round pipeline with its default adaptive clipping), on a split where the honest participants' data
// look alike: every participant holds every category (shards:C). The attacker trains honestly and
// sends the opposite of its update (signflip): it has an honest norm, so clipping lets it through
// and only the rule can stop it.
//
// - One in three: multi-Krum (the two updates closest to each other) keeps the two honest ones and
//   stays within a few points of its clean run; FedIT's mean follows the attacker and falls well
//   below. The coordinate-wise median and trimmed mean (which is the median at K = 3) do not hold at
//   K = 3 (docs/learning.md): with two honest updates that differ coordinate by coordinate (SGD
//   noise alone makes them), the median at each coordinate is the honest value nearer the attacker's
//   (or the attacker's own, where it falls between them).
// - One in five: at every coordinate the median of five lies between the second and third of the
//   four honest values whatever the attacker sends (at K = 3, anywhere between the two honest
//   ones), and the median and the trimmed mean (one dropped at each end) stay within a few points
//   of their clean runs.
//
// A small budget (two of the six built-in tasks, 8 rounds of 5 local steps) so that it runs in about
// a minute; every run is seeded, so the accuracies are the same on every machine that computes the
// same float32 arithmetic.

import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultDemoCacheDir, ensureDemoBaseModel } from '../src/demo/base-model.ts';
import {
  builtinTaskDataset,
  mergeSettings,
  rulePreset,
  runFederated,
  type SimulationDataset,
  type SimulationOptions,
} from '../src/simulate/index.ts';

const CATEGORIES = ['uppercase', 'dashes'] as const;
const SEED = 1;
const BUDGET = { training: { localSteps: 5, lr: 0.005 } } as SimulationOptions['settings'];
const ROUNDS = 8;
// Measured (32 held-out examples, 3 points each): multi-Krum 94 -> 91 at one in three, FedIT
// 97 -> 34; median 97 -> 91 and trimmed mean 100 -> 88 at one in five.
/** "Within a few points": a robust rule under attack loses at most this much accuracy. */
const FEW_POINTS = 0.15;
/** "Well below": FedIT under the same attack loses at least this much. */
const WELL_BELOW = 0.4;

function dataset(): SimulationDataset {
  const full = builtinTaskDataset({
    seed: SEED,
    categories: CATEGORIES,
    trainPerCategory: 40,
    evalPerCategory: 16,
  });
  return { ...full, evaluations: full.evaluations.filter((e) => e.name === 'seen wordings') };
}

/** Exact match on the held-out set after the last round, and the updates counted each round. */
async function federate(
  modelDir: string,
  rule: string,
  participants: number,
  attacked: boolean,
): Promise<{ accuracy: number; updates: number[] }> {
  const workDir = mkdtempSync(join(tmpdir(), 'fedit-robust-'));
  try {
    const run = await runFederated({
      modelDir,
      dataset: dataset(),
      split: { kind: 'shards', categoriesPerParticipant: CATEGORIES.length },
      participants,
      rounds: ROUNDS,
      seed: SEED,
      rule,
      settings: mergeSettings(BUDGET!, rulePreset(rule)),
      workDir,
      evalEveryRound: false,
      ...(attacked ? { attack: { participant: 0, kind: 'signflip' as const } } : {}),
    });
    return {
      accuracy: run.final['seen wordings'].overall.accuracy,
      updates: run.rounds.map((r) => r.updates),
    };
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

const pct = (x: number) => `${Math.round(100 * x)}%`;

test('one sign-flipping participant in three: multi-Krum holds, FedIT falls well below its clean run', async (t) => {
  const modelDir = await ensureDemoBaseModel(defaultDemoCacheDir());
  const result: Record<string, { clean: number; attacked: number }> = {};
  for (const rule of ['krum', 'fedit']) {
    const clean = await federate(modelDir, rule, 3, false);
    const attacked = await federate(modelDir, rule, 3, true);
    t.deepEqual(
      attacked.updates,
      new Array(ROUNDS).fill(3),
      `${rule}: the poisoned update counted every round`,
    );
    result[rule] = { clean: clean.accuracy, attacked: attacked.accuracy };
    t.log(`${rule}: clean ${pct(clean.accuracy)}, one in three sign-flipping ${pct(attacked.accuracy)}`);
  }
  t.true(result.fedit.clean >= 0.6, 'the clean federation learns the tasks at this budget');
  t.true(result.krum.attacked >= result.krum.clean - FEW_POINTS, 'multi-Krum holds');
  t.true(result.fedit.attacked <= result.fedit.clean - WELL_BELOW, 'FedIT follows the attacker');
  t.true(result.fedit.attacked <= result.krum.attacked - WELL_BELOW);
});

test('one sign-flipping participant in five: the median and the trimmed mean hold', async (t) => {
  const modelDir = await ensureDemoBaseModel(defaultDemoCacheDir());
  for (const rule of ['median', 'trimmed-mean']) {
    const clean = await federate(modelDir, rule, 5, false);
    const attacked = await federate(modelDir, rule, 5, true);
    t.deepEqual(
      attacked.updates,
      new Array(ROUNDS).fill(5),
      `${rule}: the poisoned update counted every round`,
    );
    t.log(`${rule}: clean ${pct(clean.accuracy)}, one in five sign-flipping ${pct(attacked.accuracy)}`);
    t.true(clean.accuracy >= 0.6, `${rule}: the clean federation learns the tasks at this budget`);
    t.true(attacked.accuracy >= clean.accuracy - FEW_POINTS, `${rule} holds`);
  }
});
