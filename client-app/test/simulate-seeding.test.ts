// The simulated federation is seeded end to end: two runs with the same seed (split, initial
// adapter, federation id, participant identities and hence every participant's data order) give the
// same global adapter after every round, through the real protocol; another seed gives others.

import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultDemoCacheDir, ensureDemoBaseModel } from '../src/demo/base-model.ts';
import {
  builtinTaskDataset,
  runLoopbackFederation,
  simulationPlan,
  type SimulationOptions,
} from '../src/simulate/index.ts';

const TINY = { training: { localSteps: 3, batchSize: 4 } } as const;

/** The global adapter's hash after each round of a tiny federation seeded with `seed`. */
async function adapterHashes(modelDir: string, seed: number): Promise<string[]> {
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
    };
    const { shards, settings } = simulationPlan(o);
    return await runLoopbackFederation({
      root: workDir,
      fedDir: join(workDir, 'federation'),
      modelDir,
      modelName: 'seeding test',
      members: shards,
      settings,
      seed,
      seededIdentities: true,
      threads: 1,
      onRound: async (closed) => closed.adapterHash,
    });
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

test('the same seed gives the same global adapter after every round; another seed another', async (t) => {
  const modelDir = await ensureDemoBaseModel(defaultDemoCacheDir());
  const first = await adapterHashes(modelDir, 11);
  const again = await adapterHashes(modelDir, 11);
  const other = await adapterHashes(modelDir, 12);
  t.is(first.length, 2);
  t.deepEqual(again, first);
  t.not(first[0], first[1], 'the second round moved the adapter');
  t.notDeepEqual(other, first);
});
