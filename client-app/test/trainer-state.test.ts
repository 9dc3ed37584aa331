// `fedit train` writes its loss history beside the adapter as trainer_state.json, in the layout of
// Hugging Face Trainer's: one entry per step and per held-out evaluation, and a run interrupted and
// resumed writes the same file as one that ran straight through.

import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { runLocalTraining, type LocalTrainingOptions, type TrainingEvent } from '../src/core/index.ts';
import type { TrainerState } from '../src/core/train/trainer-state.ts';
import { fedit } from '../../test/fixtures/fedit-cli.ts';

const ANSWERS = ['red', 'blue', 'green', 'black', 'white', 'gold', 'pink', 'grey'];

async function workspace(t: { teardown: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-trainer-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(dir, 'model'));
  const data = join(dir, 'colours.jsonl');
  const rows = ANSWERS.map((a, i) => JSON.stringify({ instruction: `Colour ${i}?`, output: a }));
  writeFileSync(data, rows.join('\n') + '\n');
  return { dir, modelDir, data };
}

function options(w: { dir: string; modelDir: string; data: string }, o: Partial<LocalTrainingOptions>) {
  return {
    modelDir: w.modelDir,
    dataFiles: [w.data],
    adapterOut: join(w.dir, 'adapter'),
    lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] },
    template: 'alpaca',
    cutoffLen: 256,
    batchSize: 2,
    epochs: 2,
    lr: 5e-3,
    schedule: 'constant',
    heldOutFraction: 0.25, // 2 of 8 held out: 6 train rows, 3 steps per epoch
    evalEvery: 2,
    seed: 3,
    threads: 1,
    ...o,
  } as LocalTrainingOptions;
}

const readState = (adapterDir: string) =>
  JSON.parse(readFileSync(join(adapterDir, 'trainer_state.json'), 'utf8')) as TrainerState;

test('trainer_state.json logs every step and evaluation; a resumed run writes the same file', async (t) => {
  const w = await workspace(t);
  const events: TrainingEvent[] = [];
  const straight = join(w.dir, 'straight');
  await runLocalTraining(options(w, { adapterOut: straight, onEvent: (e) => events.push(e) }));
  const state = readState(straight);
  const steps = events.filter((e) => e.type === 'step');
  const evals = events.filter((e) => e.type === 'eval');
  t.like(state, {
    global_step: 6,
    max_steps: 6,
    epoch: 2,
    num_train_epochs: 2,
    logging_steps: 1,
    eval_steps: 2,
    train_batch_size: 2,
  });
  t.deepEqual(
    state.log_history.filter((entry) => 'loss' in entry),
    steps.map((e) => ({
      step: e.step,
      epoch: e.step / 3,
      loss: e.loss,
      learning_rate: 5e-3,
      grad_norm: e.gradNorm,
    })),
  );
  t.deepEqual(
    state.log_history.filter((entry) => 'eval_loss' in entry),
    evals.map((e) => ({
      step: e.step,
      epoch: e.step / 3,
      eval_loss: e.loss,
      eval_perplexity: e.perplexity,
      eval_tokens: e.tokens,
    })),
  );
  t.deepEqual(
    state.log_history.map((entry) => entry.step),
    [1, 2, 2, 3, 4, 4, 5, 6, 6],
    'in step order; each evaluation after its step',
  );

  const resumed = join(w.dir, 'resumed');
  const controller = new AbortController();
  const stopped = await runLocalTraining(
    options(w, {
      adapterOut: resumed,
      signal: controller.signal,
      onEvent: (e) => e.type === 'step' && e.step === 4 && controller.abort(),
    }),
  );
  t.false(stopped.completed);
  await runLocalTraining(options(w, { adapterOut: resumed }));
  t.deepEqual(readState(resumed), state);
});

test('fedit train writes trainer_state.json beside the adapter and a second run may replace both', async (t) => {
  const w = await workspace(t);
  const out = join(w.dir, 'cli-adapter');
  const args = ['train', '--model', w.modelDir, '--data', w.data, '--adapter-out', out, '--threads', '1'];
  const first = await fedit(...args, '--max-steps', '2', '--eval-fraction', '0');
  t.is(first.code, 0, first.stderr);
  t.is(readState(out).global_step, 2);
  const second = await fedit(...args, '--max-steps', '3', '--eval-fraction', '0');
  t.is(second.code, 0, second.stderr);
  const state = readState(out);
  t.is(state.global_step, 3);
  t.deepEqual(
    state.log_history.map((entry) => entry.step),
    [1, 2, 3],
  );
});
