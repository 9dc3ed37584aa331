// The generation graph (same decoder, with a key/value cache) and the sampler.

import test from 'ava';
import { LORA_TARGETS, type LoraConfig } from '../src/model/lora.ts';
import { uniformSampler } from '../src/model/random.ts';
import { Generator, sampleToken } from '../src/generate/generator.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { Trainer } from '../src/train/trainer.ts';
import { randomRows, tinyModel } from './helpers/tiny.ts';

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

test('the key/value cache gives the same logits as running the whole sequence', async (t) => {
  const m = await tinyModel({ numKvHeads: 1, qkvBias: true, modelType: 'qwen2' });
  try {
    const gen = await Generator.create({ model: m.config, weights: m.store, threads: 1 });
    const tokens = [5, 17, 200, 3, 99, 42, 7, 128, 64];
    const whole = await gen.forward(tokens, undefined, 0);
    // prefill 5 tokens, then one token at a time
    let step = await gen.forward(tokens.slice(0, 5), undefined, 0);
    for (let i = 5; i < tokens.length; i++) step = await gen.forward([tokens[i]], step.cache, i);
    t.true(
      maxRelDiff(step.logits, whole.logits) < 1e-5,
      `max relative difference ${maxRelDiff(step.logits, whole.logits)}`,
    );
    t.is(whole.logits.length, m.config.vocabSize);
    await gen.release();
  } finally {
    m.cleanup();
  }
});

test('generation with a trained adapter reproduces the sequence the adapter memorised', async (t) => {
  const m = await tinyModel({}, { std: 0.3 });
  try {
    const lora: LoraConfig = { rank: 8, alpha: 16, dropout: 0, targets: [...LORA_TARGETS] };
    const [row] = randomRows(m.config.vocabSize, 1, 12, 9);
    const trainer = await Trainer.create({
      model: m.config,
      weights: m.store,
      lora,
      batch: 1,
      seq: 12,
      optimizer: DEFAULT_ADAMW,
      seed: 1,
      threads: 1,
    });
    for (let s = 0; s < 60; s++) await trainer.trainStep([[row]], 1e-2);
    const tensors = (await trainer.parameters()) as Map<string, Float32Array>;
    await trainer.release();

    const withAdapter = await Generator.create({
      model: m.config,
      weights: m.store,
      lora: { config: lora, tensors },
      threads: 1,
    });
    const out: number[] = [];
    for await (const tok of withAdapter.generate(row.inputIds.slice(0, 2), { maxNewTokens: 10 }))
      out.push(tok);
    t.deepEqual(out, row.inputIds.slice(2));

    const base = await Generator.create({ model: m.config, weights: m.store, threads: 1 });
    const plain: number[] = [];
    for await (const tok of base.generate(row.inputIds.slice(0, 2), { maxNewTokens: 10 })) plain.push(tok);
    t.notDeepEqual(plain, out, 'the base model alone does not know the sequence');

    // stop tokens end generation without being yielded
    const stopped: number[] = [];
    for await (const tok of withAdapter.generate(row.inputIds.slice(0, 2), {
      maxNewTokens: 10,
      stopTokens: [row.inputIds[5]],
    }))
      stopped.push(tok);
    t.deepEqual(stopped, row.inputIds.slice(2, 5));
    await withAdapter.release();
    await base.release();
  } finally {
    m.cleanup();
  }
});

test('sampling: greedy takes the argmax, temperature and top-p sample from the nucleus', (t) => {
  const logits = Float32Array.of(1, 3, 2, -5);
  const random = uniformSampler(1);
  t.is(sampleToken(logits, 0, 1, random), 1);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 4000; i++) counts[sampleToken(logits, 1, 1, random)]++;
  // softmax(1, 3, 2, -5) = 0.090, 0.665, 0.245, 0.0002
  t.true(Math.abs(counts[1] / 4000 - 0.665) < 0.03, `${counts}`);
  t.true(Math.abs(counts[2] / 4000 - 0.245) < 0.03, `${counts}`);
  const nucleus = [0, 0, 0, 0];
  for (let i = 0; i < 2000; i++) nucleus[sampleToken(logits, 1, 0.8, random)]++;
  t.is(nucleus[0] + nucleus[3], 0, 'top-p 0.8 keeps only the two likeliest tokens');
});
