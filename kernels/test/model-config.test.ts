// config.json as real models ship it: rope_scaling (Llama 3.1/3.2's llama3, linear), explicit
// head_dim, the fields fedit refuses with a clear error, and a tokenizer whose vocabulary differs
// from the model's embedding table.

import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint, writeHfCheckpoint } from '../src/model/checkpoint.ts';
import { parseLlamaConfig, PRESETS, toHfConfig, type LlamaConfig } from '../src/model/config.ts';
import { randomLlamaTensors } from '../src/model/random.ts';
import { Generator } from '../src/generate/generator.ts';
import { ropeInverseFrequencies } from '../src/train/batch.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { Trainer } from '../src/train/trainer.ts';
import { loadTokenizer } from '../src/tokenizer/load.ts';
import { ASCII_ALPHABET, writeCharTokenizer } from '../src/tokenizer/char-tokenizer.ts';
import { findTorchPython } from '../bench/reference.ts';
import { randomRows, tinyModel } from './helpers/tiny.ts';

/** Llama-3.2-1B-Instruct's config.json, every field as published. */
const LLAMA_32_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};

const TORCH_EXT = fileURLToPath(new URL('./helpers/torch_reference_ext.py', import.meta.url));

test('llama3 rope_scaling: Llama 3.2 1B inverse frequencies by hand, and against torch', (t) => {
  const cfg = parseLlamaConfig(LLAMA_32_1B);
  t.deepEqual(cfg.ropeScaling, {
    type: 'llama3',
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  const inv = ropeInverseFrequencies(cfg);
  const plain = ropeInverseFrequencies({ ...cfg, ropeScaling: undefined });
  t.is(inv.length, 32);
  // wavelength 2*pi < 8192/4: a high frequency, kept
  t.is(inv[0], 1);
  // the lowest frequency, wavelength far beyond 8192: divided by the factor
  t.is(inv[31], plain[31] / 32);
  // i = 15: f = 500000^(-30/64) = 0.0021311..., wavelength 2948 lies between 2048 and 8192, so
  // smooth = (8192 / 2948.30 - 1) / (4 - 1) = 0.59285 and f' = (1 - smooth) * f / 32 + smooth * f
  t.true(Math.abs(inv[15] - 0.001290547928209264) < 1e-15, `${inv[15]}`);
  for (let i = 1; i < 32; i++) t.true(inv[i] < inv[i - 1], 'still strictly decreasing');

  const python = findTorchPython();
  if (!python) {
    t.log('torch comparison skipped: no python3 with torch');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'fedit-rope-'));
  try {
    for (const scaling of [LLAMA_32_1B.rope_scaling, { type: 'linear', factor: 4 }]) {
      const raw = { ...LLAMA_32_1B, rope_scaling: scaling };
      writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
      const expected = JSON.parse(
        execFileSync(python, [TORCH_EXT, '--inv-freq', join(dir, 'config.json')], { encoding: 'utf8' }),
      ) as number[];
      const ours = ropeInverseFrequencies(parseLlamaConfig(raw));
      t.is(ours.length, expected.length);
      const worst = Math.max(...expected.map((e, i) => Math.abs(ours[i] - e) / e));
      t.true(worst < 1e-12, `${JSON.stringify(scaling)}: worst relative difference ${worst}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a config.json shaped like Llama-3.2-1B (tiny sizes) loads, trains a step and generates', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-llama32-'));
  try {
    // Only the sizes shrink: head_dim stays explicit and is not hidden_size / heads (32 / 4 = 8).
    const raw = {
      ...LLAMA_32_1B,
      hidden_size: 32,
      head_dim: 16,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      intermediate_size: 64,
      num_hidden_layers: 2,
    };
    const parsed = parseLlamaConfig(raw);
    await writeHfCheckpoint(dir, parsed, randomLlamaTensors(parsed, 3, 0.1), 'BF16');
    writeFileSync(join(dir, 'config.json'), JSON.stringify(raw, null, 2));
    const model = await loadCheckpoint(dir);
    t.like(model.config, {
      modelType: 'llama',
      vocabSize: 128256,
      hiddenSize: 32,
      headDim: 16,
      numHeads: 4,
      numKvHeads: 1,
      tieWordEmbeddings: true,
      qkvBias: false,
      bosTokenId: 128000,
      eosTokenId: [128001, 128008, 128009],
      ropeTheta: 500000,
      maxPositionEmbeddings: 131072,
      ropeScaling: parsed.ropeScaling,
    });
    t.false(model.store.entries.has('lm_head.weight'), 'tied: the head is the embedding');

    const rows = randomRows(128256, 1, 8, 4);
    const trainer = await Trainer.create({
      model: model.config,
      weights: model.store,
      lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'] },
      batch: 1,
      seq: 8,
      optimizer: DEFAULT_ADAMW,
      seed: 0,
      threads: 1,
    });
    const step = await trainer.trainStep([rows], 1e-3);
    await trainer.release();
    t.true(Math.abs(step.loss - Math.log(128256)) < 1, `a random model is near ln(vocab): ${step.loss}`);

    const generator = await Generator.create({ model: model.config, weights: model.store, threads: 1 });
    const out: number[] = [];
    for await (const id of generator.generate(rows[0].inputIds, { maxNewTokens: 3 })) out.push(id);
    await generator.release();
    t.is(out.length, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rope_scaling: linear and the old "type" key are read; other kinds are refused naming the supported ones', (t) => {
  const base = toHfConfig(PRESETS.tiny);
  const linear = parseLlamaConfig({ ...base, rope_scaling: { type: 'linear', factor: 2 } });
  t.deepEqual(linear.ropeScaling, { type: 'linear', factor: 2 });
  const inv = ropeInverseFrequencies(linear);
  const plain = ropeInverseFrequencies(PRESETS.tiny);
  t.deepEqual(
    Array.from(inv),
    Array.from(plain, (f) => f / 2),
  );
  t.is(parseLlamaConfig({ ...base, rope_scaling: { rope_type: 'default' } }).ropeScaling, undefined);
  t.is(parseLlamaConfig({ ...base, rope_scaling: null }).ropeScaling, undefined);
  for (const kind of ['dynamic', 'yarn', 'longrope']) {
    t.throws(() => parseLlamaConfig({ ...base, rope_scaling: { rope_type: kind, factor: 4 } }), {
      message: new RegExp(
        `rope_scaling type "${kind}" is not supported; fedit supports rope_scaling default, linear, llama3`,
      ),
    });
  }
  t.throws(
    () => parseLlamaConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1 } }),
    { message: /rope_scaling "high_freq_factor" must be a positive number/ },
  );
  // written back and read again, the same
  const llama3 = parseLlamaConfig(LLAMA_32_1B);
  t.deepEqual(parseLlamaConfig(toHfConfig(llama3)).ropeScaling, llama3.ropeScaling);
});

test('mlp_bias, other activations are refused naming the field; llama attention_bias loads o_proj.bias', async (t) => {
  const base = toHfConfig(PRESETS.tiny);
  t.throws(() => parseLlamaConfig({ ...base, mlp_bias: true }), {
    message: /"mlp_bias": true is not supported/,
  });
  t.throws(() => parseLlamaConfig({ ...base, hidden_act: 'gelu' }), {
    message: /hidden_act "gelu" is not supported/,
  });
  // Mistral's attention has no bias whatever attention_bias says; Qwen2's has q/k/v only
  t.false(parseLlamaConfig({ ...base, model_type: 'mistral', attention_bias: true }).qkvBias);

  const m = await tinyModel({ qkvBias: true, numLayers: 1 });
  try {
    t.true(m.store.entries.has('model.layers.0.self_attn.o_proj.bias'));
    const qwen = await tinyModel({ qkvBias: true, numLayers: 1, modelType: 'qwen2' });
    t.false(qwen.store.entries.has('model.layers.0.self_attn.o_proj.bias'));
    qwen.cleanup();
  } finally {
    m.cleanup();
  }
});

test('sliding_window: applies to Mistral and to Qwen2 only with use_sliding_window; longer sequences are refused', async (t) => {
  const base = toHfConfig(PRESETS.tiny);
  t.is(parseLlamaConfig({ ...base, model_type: 'mistral', sliding_window: 4096 }).slidingWindow, 4096);
  t.is(parseLlamaConfig({ ...base, model_type: 'mistral', sliding_window: null }).slidingWindow, undefined);
  t.is(parseLlamaConfig({ ...base, model_type: 'qwen2', sliding_window: 4096 }).slidingWindow, undefined);
  t.is(
    parseLlamaConfig({ ...base, model_type: 'qwen2', sliding_window: 32, use_sliding_window: true })
      .slidingWindow,
    32,
  );

  const m = await tinyModel({ modelType: 'mistral', slidingWindow: 8 });
  try {
    t.is(m.config.slidingWindow, 8);
    const options = {
      model: m.config,
      weights: m.store,
      lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj' as const] },
      batch: 1,
      optimizer: DEFAULT_ADAMW,
      seed: 0,
      threads: 1,
    };
    await t.throwsAsync(Trainer.create({ ...options, seq: 16 }), {
      message: /sequences of up to 16 tokens.*sliding_window \(8\)/,
    });
    const trainer = await Trainer.create({ ...options, seq: 8 });
    await trainer.release();

    const generator = await Generator.create({ model: m.config, weights: m.store, threads: 1 });
    const out: number[] = [];
    for await (const id of generator.generate([1, 2, 3, 4, 5], { maxNewTokens: 10 })) out.push(id);
    // the 4th new token is predicted from 8 tokens; feeding it back would make 9
    t.is(out.length, 4, 'generation stops at the window');
    await t.throwsAsync(
      async () => {
        for await (const _ of generator.generate(
          Array.from({ length: 9 }, (_, i) => i),
          { maxNewTokens: 1 },
        ));
      },
      { message: /sliding_window/ },
    );
    await generator.release();
  } finally {
    m.cleanup();
  }
});

test('a tokenizer with more ids than the embedding table is refused at load', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-vocab-'));
  try {
    const info = await writeCharTokenizer(dir, { alphabet: ASCII_ALPHABET });
    const config: LlamaConfig = { ...PRESETS.tiny, vocabSize: info.vocabSize - 1 };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig(config)));
    await t.throwsAsync(loadTokenizer(dir), {
      message: new RegExp(
        `has ${info.vocabSize} token ids but .*config\\.json says vocab_size ${info.vocabSize - 1}`,
      ),
    });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig({ ...config, vocabSize: 256 })));
    t.is((await loadTokenizer(dir)).vocabSize, info.vocabSize, 'a larger table is fine');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generation never picks ids past the tokenizer when the model vocabulary is larger', async (t) => {
  // tiny's 256-row table against a 100-token tokenizer (the char tokenizer's size, roughly)
  const m = await tinyModel({}, { std: 0.3 });
  const decodable = 100;
  try {
    const prompt = [3, 14, 15, 92, 65];
    const run = async (tokenizerVocabSize: number | undefined, temperature: number) => {
      const g = await Generator.create({ model: m.config, weights: m.store, threads: 1, tokenizerVocabSize });
      const out: number[] = [];
      for await (const id of g.generate(prompt, { maxNewTokens: 24, temperature, seed: 5 })) out.push(id);
      // each greedy pick is the best of the decodable ids
      if (temperature === 0 && tokenizerVocabSize !== undefined) {
        let { logits, cache } = await g.forward(prompt, undefined, 0);
        for (const [n, id] of out.entries()) {
          const best = logits.subarray(0, decodable).reduce((b, v, i, a) => (v > a[b] ? i : b), 0);
          t.is(id, best);
          ({ logits, cache } = await g.forward([id], cache, prompt.length + n));
        }
      }
      await g.release();
      return out;
    };
    const unlimited = [...(await run(undefined, 0)), ...(await run(undefined, 1))];
    t.true(
      unlimited.some((id) => id >= decodable),
      'without the limit this model does pick such ids, so the check below means something',
    );
    for (const temperature of [0, 1]) {
      const limited = await run(decodable, temperature);
      t.is(limited.length, 24);
      t.true(
        limited.every((id) => id < decodable),
        `temperature ${temperature}: ${limited}`,
      );
    }
  } finally {
    m.cleanup();
  }
});
