// The demo's learning signal, offline (no network): the built-in base model (pretrained by fedit's
// own engine on first use, then cached) fails the demo's instructions; a LoRA adapter trained on
// everybody's data pooled learns them; a participant's local-only adapter learns its own categories
// and not the others; and three FedIT rounds (each participant trains from the global adapter on
// its own shard, then the sample-weighted mean of the LoRA tensors) rise above every local-only
// adapter on the tasks of all categories. `client-app/src/demo/offline-proof.ts` runs the full-size
// version.

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, loadTokenizer } from '@fedit/kernels';
import { defaultDemoCacheDir, ensureDemoBaseModel } from '../src/demo/base-model.ts';
import { formatProof, runOfflineProof } from '../src/demo/offline-proof.ts';
import { TASK_CATEGORIES, type TaskCategory } from '../src/demo/tasks.ts';
import type { TaskAccuracy } from '../src/demo/evaluate.ts';

const mean = (a: TaskAccuracy, categories: readonly TaskCategory[]) =>
  categories.reduce((s, c) => s + a.byCategory[c].accuracy, 0) / categories.length;

test('the built-in base model is a real Hugging Face folder, cached', async (t) => {
  let steps = 0;
  const dir = await ensureDemoBaseModel(defaultDemoCacheDir(), { onProgress: () => steps++ });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    t.true(existsSync(join(dir, f)), f);
  }
  const model = await loadCheckpoint(dir);
  const tokenizer = await loadTokenizer(dir);
  t.is(model.config.vocabSize, tokenizer.vocabSize);
  const summary = JSON.parse(readFileSync(join(dir, 'fedit-demo.json'), 'utf8'));
  t.log(
    `${dir}: ${summary.parameters} parameters, pretrained in ${summary.seconds.toFixed(1)} s${steps ? '' : ' (cached)'}`,
  );
  t.true(summary.parameters > 200_000 && summary.parameters < 2_000_000);
  t.is(await ensureDemoBaseModel(defaultDemoCacheDir()), dir, 'the second call reuses it');
});

test('LoRA learns the demo tasks; local-only learns its own categories; FedIT rounds beat local-only', async (t) => {
  // Three rounds of 30 local steps: the proof's own budget, not the demo federation's 24 x 10.
  const result = await runOfflineProof({ rounds: 3, settings: { steps: 30 } });
  t.log('\n' + formatProof(result));
  t.log(
    `pretrain or cache ${result.seconds.pretrain.toFixed(1)} s, total ${result.seconds.total.toFixed(1)} s`,
  );
  const base = result.base.accuracy;
  const pooled = result.pooled!.accuracy;

  t.true(
    base.overall.accuracy <= 0.2,
    `the base model does not follow the instructions (${base.overall.accuracy})`,
  );
  t.true(pooled.overall.accuracy >= 0.6, `pooled LoRA learns them (${pooled.overall.accuracy})`);
  t.true(pooled.overall.accuracy >= base.overall.accuracy + 0.4);

  for (const local of result.localOnly) {
    const unseen = TASK_CATEGORIES.filter((c) => !local.categories.includes(c));
    const own = mean(local.accuracy, local.categories);
    const other = mean(local.accuracy, unseen);
    t.true(own >= 0.6, `${local.label} learns its own categories (${own})`);
    t.true(other <= 0.2, `${local.label} does not learn the others (${other})`);
    t.true(mean(pooled, unseen) >= other + 0.4, `pooled beats ${local.label} where it saw nothing`);
  }

  const fed = result.rounds.map((r) => r.accuracy.overall.accuracy);
  t.is(fed.length, 3);
  t.true(fed[2] >= fed[0] + 0.2, `accuracy rises over the rounds (${fed.join(', ')})`);
  for (const local of result.localOnly) {
    t.true(
      fed[2] > local.accuracy.overall.accuracy,
      `the global adapter beats ${local.label} on all categories (${fed[2]} vs ${local.accuracy.overall.accuracy})`,
    );
  }
});
