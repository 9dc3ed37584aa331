// The simulated federation is seeded end to end: two runs with the same seed (split, initial
// adapter, federation id, participant identities and hence every participant's data order) give the
// same global adapter after every round, through the real protocol; another seed gives others.
// And a poisoning peer (adversary.ts) goes through the same protocol: its tampered update counts.

import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultDemoCacheDir, ensureDemoBaseModel } from '../src/demo/base-model.ts';
import { initLoraTensors, loadCheckpoint, uniformSampler } from '@fedit/kernels';
import { DEMO_LORA } from '../src/demo/train.ts';
import {
  builtinTaskDataset,
  mergeSettings,
  rulePreset,
  runLoopbackFederation,
  simulationPlan,
  tamper,
  type ClosedRound,
  type SimulationOptions,
} from '../src/simulate/index.ts';

const TINY = { training: { localSteps: 3, batchSize: 4 } } as const;

/** Each round's closed global adapter of a tiny federation seeded with `seed` (2 participants). */
async function tinyFederation(
  modelDir: string,
  seed: number,
  extra: Partial<SimulationOptions> = {},
): Promise<ClosedRound[]> {
  const workDir = mkdtempSync(join(tmpdir(), 'fedit-simulate-seed-'));
  try {
    const o: SimulationOptions = {
      modelDir,
      dataset: builtinTaskDataset({ seed, trainPerCategory: 12, evalPerCategory: 1 }),
      split: { kind: 'shards', categoriesPerParticipant: 3 },
      participants: 2,
      rounds: 2,
      seed,
      rule: 'fedit',
      settings: TINY as SimulationOptions['settings'],
      workDir,
      ...extra,
    };
    const { members, settings } = simulationPlan(o);
    return await runLoopbackFederation({
      root: workDir,
      fedDir: join(workDir, 'federation'),
      modelDir,
      modelName: 'seeding test',
      members,
      settings,
      seed,
      seededIdentities: true,
      threads: 1,
      onRound: async (closed) => closed,
    });
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

test('the same seed gives the same global adapter after every round; another seed another', async (t) => {
  const modelDir = await ensureDemoBaseModel(defaultDemoCacheDir());
  const hashes = async (seed: number) => (await tinyFederation(modelDir, seed)).map((r) => r.adapterHash);
  const first = await hashes(11);
  const again = await hashes(11);
  const other = await hashes(12);
  t.is(first.length, 2);
  t.deepEqual(again, first);
  t.not(first[0], first[1], 'the second round moved the adapter');
  t.notDeepEqual(other, first);
});

const norm = (a: ReadonlyMap<string, Float32Array>, b: ReadonlyMap<string, Float32Array>) => {
  let s = 0;
  for (const [name, x] of a) x.forEach((v, i) => (s += (v - b.get(name)![i]) ** 2));
  return Math.sqrt(s);
};

test('a poisoning peer through the real protocol: its update scaled x1000 is counted and moves the adapter', async (t) => {
  const modelDir = await ensureDemoBaseModel(defaultDemoCacheDir());
  const model = await loadCheckpoint(modelDir);
  // The initial global adapter, as the federation creates it from the seed.
  const initial = initLoraTensors(model.config, DEMO_LORA, uniformSampler(21));
  const clean = await tinyFederation(modelDir, 21, { rounds: 1 });
  const attacked = await tinyFederation(modelDir, 21, {
    rounds: 1,
    attack: { participant: 0, kind: 'scale', factor: 1000 },
    // both updates must count: the round waits for the poisoned one too
    settings: { ...TINY, minUpdates: 2 } as SimulationOptions['settings'],
  });
  t.is(attacked[0].updates, 2, 'the poisoned update was counted');
  t.deepEqual(
    attacked[0].took.map((x) => x.name),
    ['participant-1', 'participant-2'],
  );
  const honestStep = norm(clean[0].tensors, initial);
  const poisonedStep = norm(attacked[0].tensors, initial);
  t.true(honestStep > 0);
  t.true(poisonedStep > 100 * honestStep, `poisoned step ${poisonedStep} vs honest ${honestStep}`);
});

test('a poisoned update the coordinator refuses (above the norm bound) leaves the round to the others', async (t) => {
  const modelDir = await ensureDemoBaseModel(defaultDemoCacheDir());
  // The default with an attack: n - 1 updates a round.
  const attacked = await tinyFederation(modelDir, 21, {
    rounds: 1,
    attack: { participant: 0, kind: 'scale', factor: 1e9 },
  });
  t.is(attacked[0].updates, 1);
  t.deepEqual(
    attacked[0].took.map((x) => x.name),
    ['participant-2'],
  );
});

test('tamper: scale, sign flip and example count, element by element', (t) => {
  const global = new Map([['w', Float32Array.of(1, 2, -1)]]);
  const trained = new Map([['w', Float32Array.of(1.5, 2, -3)]]);
  t.deepEqual([...tamper({ kind: 'scale', factor: 10 }, global, trained).get('w')!], [6, 2, -21]);
  t.deepEqual([...tamper({ kind: 'signflip' }, global, trained).get('w')!], [0.5, 2, 1]);
  t.deepEqual([...tamper({ kind: 'examples', count: 5 }, global, trained).get('w')!], [1.5, 2, -3]);
});

test("the 'secure' rule (the demo's --secure-aggregation) runs secure rounds that equal plain FedIT's first round within the fixed-point bound", async (t) => {
  const modelDir = await ensureDemoBaseModel(defaultDemoCacheDir());
  // Same seed: same identities, data orders and initial adapter, so round 1 trains the same updates
  // in both. With two participants the plain default clipping (2 x the median norm) clips nothing,
  // so both aggregate FedIT's weighted mean; the secure one from the unmasked fixed-point sum.
  const plain = await tinyFederation(modelDir, 21);
  const secure = await tinyFederation(modelDir, 21, {
    rule: 'secure',
    settings: mergeSettings(TINY, rulePreset('secure')) as SimulationOptions['settings'],
  });
  t.is(secure.length, 2);
  t.is(secure[0].updates, 2);
  t.not(secure[0].adapterHash, plain[0].adapterHash, 'a different computation');
  let worst = 0;
  for (const [name, x] of secure[0].tensors) {
    const p = plain[0].tensors.get(name)!;
    x.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - p[i]))));
  }
  const moved = norm(secure[0].tensors, secure[1].tensors);
  // n * 2^-18 / T per coordinate (T = 2 x 12 examples), plus float32 rounding of either path.
  t.true(worst < 1e-5, `largest difference ${worst}`);
  t.true(moved > 1e-3, `the adapter moved ${moved} in round 2`);
});
