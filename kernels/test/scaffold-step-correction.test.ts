// SCAFFOLD in AdamW's direction space (train/graphs.ts header, stepCorrection): a step with the
// correction is the plain AdamW step moved a further -lr * correction, on train_step and on the
// grad_step + apply_step path alike; the gradient (and so Adam's moments) is untouched; and the
// correction cannot be given both ways at once.

import test from 'ava';
import { type LoraConfig } from '../src/model/lora.ts';
import { normalSampler } from '../src/model/random.ts';
import { trainableSpecs } from '../src/train/graphs.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { TrainingOptionsError } from '../src/train/federated-options.ts';
import { Trainer, type TrainerOptions } from '../src/train/trainer.ts';
import { randomRows, tinyModel } from './helpers/tiny.ts';

const lora: LoraConfig = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'] };

function randomTensors(options: TrainerOptions, seed: number, scale: number, trainedOnly = false) {
  const rnd = normalSampler(seed);
  return new Map(
    trainableSpecs(options)
      .filter((s) => !trainedOnly || !s.frozen)
      .map((s) => [s.name, Float32Array.from({ length: s.shape[0] * s.shape[1] }, () => rnd() * scale)]),
  );
}

test('a step with stepCorrection is the plain AdamW step minus lr * correction, with or without micro-batches', async (t) => {
  const m = await tinyModel();
  try {
    const base: TrainerOptions = {
      model: m.config,
      weights: m.store,
      lora,
      batch: 4,
      seq: 16,
      optimizer: DEFAULT_ADAMW,
      seed: 7,
      threads: 1,
      freezeLoraA: true,
    };
    const initial = randomTensors(base, 11, 0.1);
    const correction = randomTensors(base, 5, 0.5, true);
    const rows = randomRows(m.config.vocabSize, 4, 16);
    const lr = 1e-2;
    for (const microBatches of [1, 3]) {
      const step = async (extra: Partial<TrainerOptions>) => {
        const trainer = await Trainer.create({ ...base, initial, microBatches, ...extra });
        const result = await trainer.trainStep(Array(microBatches).fill(rows), lr);
        const params = await trainer.parameters();
        await trainer.release();
        return { params, gradNorm: result.gradNorm };
      };
      const plain = await step({});
      const corrected = await step({ stepCorrection: correction });
      t.is(corrected.gradNorm, plain.gradNorm, 'the gradient is untouched');
      for (const [name, p] of plain.params) {
        const c = correction.get(name);
        const q = corrected.params.get(name)!;
        if (!c) {
          t.deepEqual(Array.from(q), Array.from(p), `${name} (frozen) unchanged`);
          continue;
        }
        const worst = Math.max(...Array.from(p, (v, i) => Math.abs(q[i] - (v - lr * c[i]))));
        t.true(worst < 1e-6, `${microBatches} micro-batches, ${name}: off by ${worst}`);
      }
    }
    const both = Trainer.create({
      ...base,
      initial,
      stepCorrection: correction,
      gradientCorrection: correction,
    });
    await t.throwsAsync(both, {
      instanceOf: TrainingOptionsError,
      message: /stepCorrection: give SCAFFOLD one correction/,
    });
    const wrong = new Map(correction);
    wrong.delete([...wrong.keys()][0]);
    await t.throwsAsync(Trainer.create({ ...base, initial, stepCorrection: wrong }), {
      instanceOf: TrainingOptionsError,
      message: /stepCorrection lacks .*, a trained tensor/,
    });
  } finally {
    m.cleanup();
  }
});
