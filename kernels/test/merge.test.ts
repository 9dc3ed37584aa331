// Merging a LoRA adapter into its base: the merged checkpoint computes exactly what base + LoRA
// computes, is a complete Hugging Face model folder, and adapters that do not fit are refused.

import test from 'ava';
import * as ort from 'onnxruntime-node';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readSafetensorsFile,
  readSafetensorsHeader,
  tensorToF32,
  writeAdapter,
  type AdapterConfigInit,
} from '@fedit/shared';
import { loadCheckpoint, type LoadedModel } from '../src/model/checkpoint.ts';
import { LORA_TARGETS, loraTensorSpecs, type LoraConfig } from '../src/model/lora.ts';
import { mergeAdapter, mergeLoraInto, planMerge, MergeError } from '../src/model/merge.ts';
import { normalSampler } from '../src/model/random.ts';
import { readWeight } from '../src/model/weights.ts';
import { createSession } from '../src/runtime/session.ts';
import { makeBatch } from '../src/train/batch.ts';
import { buildStepGraph, io, trainableSpecs } from '../src/train/graphs.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { randomRows, tinyModel, type TinyModel } from './helpers/tiny.ts';

const BATCH = 4;
const SEQ = 16;

/** Random LoRA tensors for every layer and target of `lora`, B non-zero so the adapter matters. */
function randomLora(model: LoadedModel, lora: LoraConfig, seed = 11): Map<string, Float32Array> {
  const normal = normalSampler(seed);
  return new Map(
    loraTensorSpecs(model.config, lora).map((s) => [
      s.name,
      Float32Array.from({ length: s.shape[0] * s.shape[1] }, () => normal() * 0.1),
    ]),
  );
}

/** Mean eval loss of `rows` through kernels' eval_step graph, with or without a LoRA. */
async function evalLoss(
  model: Pick<LoadedModel, 'config' | 'store'>,
  rows: ReturnType<typeof randomRows>,
  lora?: { config: LoraConfig; tensors: Map<string, Float32Array> },
): Promise<number> {
  const options = {
    model: model.config,
    weights: model.store,
    lora: lora?.config,
    batch: BATCH,
    seq: SEQ,
    optimizer: DEFAULT_ADAMW,
    seed: 0,
  };
  const session = await createSession(buildStepGraph('eval_step', options), {
    modelDir: model.store.dir,
    threads: 1,
  });
  try {
    const { targetTokens: _, ...batch } = makeBatch(model.config, rows, BATCH, SEQ);
    const feeds: Record<string, ort.Tensor> = { ...batch };
    for (const s of trainableSpecs(options)) {
      feeds[io.param(s.name)] = new ort.Tensor('float32', lora!.tensors.get(s.name)!, s.shape);
    }
    const out = await session.run(feeds);
    return Number(out.loss_sum.data[0]) / Number(out.token_count.data[0]);
  } finally {
    await session.release();
  }
}

interface Fixture {
  m: TinyModel;
  work: string;
  adapterDir: string;
  lora: LoraConfig;
  tensors: Map<string, Float32Array>;
}

async function withFixture(
  run: (f: Fixture) => Promise<void>,
  options: { lora?: LoraConfig; adapter?: Partial<AdapterConfigInit> } = {},
): Promise<void> {
  const m = await tinyModel();
  const work = await mkdtemp(join(tmpdir(), 'fedit-merge-'));
  try {
    const lora = options.lora ?? { rank: 4, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] };
    const tensors = randomLora(m, lora);
    const adapterDir = join(work, 'adapter');
    await writeAdapter(adapterDir, {
      config: { rank: lora.rank, alpha: lora.alpha, targetModules: lora.targets, ...options.adapter },
      tensors,
      metadata: { baseModelIdentity: m.identity },
    });
    await run({ m, work, adapterDir, lora, tensors });
  } finally {
    m.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

const rows = randomRows(256, BATCH, SEQ, 3);

test('a merged checkpoint computes what the base model with the LoRA computes', async (t) => {
  await withFixture(async ({ m, work, adapterDir, lora, tensors }) => {
    const out = join(work, 'merged');
    const result = await mergeAdapter(m.dir, adapterDir, out);
    t.is(result.modules, m.config.numLayers * LORA_TARGETS.length);
    t.is(result.scale, 2);
    const merged = await loadCheckpoint(out);
    t.not(merged.identity, m.identity);

    const base = await evalLoss(m, rows);
    const withLora = await evalLoss(m, rows, { config: lora, tensors });
    const mergedLoss = await evalLoss(merged, rows);
    t.log(
      `loss: base ${base.toFixed(6)}, base + LoRA ${withLora.toFixed(6)}, merged ${mergedLoss.toFixed(6)}`,
    );
    t.true(Math.abs(withLora - base) > 1e-3, 'the adapter changes the model, so the check can fail');
    t.true(Math.abs(mergedLoss - withLora) < 1e-5, `merged ${mergedLoss} vs base + LoRA ${withLora}`);
  });
});

test('rank-stabilised LoRA merges with scale alpha / sqrt(r)', async (t) => {
  const lora: LoraConfig = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'] };
  await withFixture(
    async ({ m, work, adapterDir, tensors }) => {
      const result = await mergeAdapter(m.dir, adapterDir, join(work, 'merged'));
      t.is(result.scale, 4);
      t.is(result.modules, m.config.numLayers * 3);
      // kernels' graph scales by alpha / r: alpha' = alpha * sqrt(r) gives the rsLoRA scale.
      const equivalent = { ...lora, alpha: lora.alpha * Math.sqrt(lora.rank) };
      const withLora = await evalLoss(m, rows, { config: equivalent, tensors });
      const merged = await evalLoss(await loadCheckpoint(join(work, 'merged')), rows);
      t.true(Math.abs(merged - withLora) < 1e-5, `merged ${merged} vs base + rsLoRA ${withLora}`);
    },
    { lora, adapter: { useRslora: true } },
  );
});

test('merging adds scale · B · A to the adapted weights only, and copies config and tokenizer files', async (t) => {
  const lora: LoraConfig = { rank: 2, alpha: 3, dropout: 0, targets: ['k_proj'] };
  await withFixture(
    async ({ m, work, adapterDir, tensors }) => {
      const tokenizerFiles = {
        'tokenizer.json': '{"model": {"type": "BPE"}}',
        'tokenizer_config.json': '{"chat_template": "{{ messages }}"}',
        'special_tokens_map.json': '{"eos_token": "</s>"}',
        'generation_config.json': '{"do_sample": false}',
      };
      for (const [file, text] of Object.entries(tokenizerFiles)) await writeFile(join(m.dir, file), text);
      const out = join(work, 'merged');
      const result = await mergeAdapter(m.dir, adapterDir, out);
      t.deepEqual(result.files, [
        'config.json',
        'generation_config.json',
        'model.safetensors',
        'special_tokens_map.json',
        'tokenizer.json',
        'tokenizer_config.json',
      ]);
      t.deepEqual((await readdir(out)).sort(), result.files);
      t.deepEqual((await readdir(work)).sort(), ['adapter', 'merged'], 'no staging folder left behind');
      for (const [file, text] of Object.entries(tokenizerFiles)) {
        t.is(await readFile(join(out, file), 'utf8'), text, file);
      }
      const baseConfig = JSON.parse(await readFile(join(m.dir, 'config.json'), 'utf8')) as object;
      t.deepEqual(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')), {
        ...baseConfig,
        torch_dtype: 'float32',
      });

      const file = await readSafetensorsFile(join(out, 'model.safetensors'));
      t.like(file.metadata, {
        format: 'pt',
        'fedit.base_model_identity': m.identity,
        'fedit.merged_adapter': result.adapterHash,
      });
      t.deepEqual([...file.tensors.keys()].sort(), [...m.store.entries.keys()].sort());
      for (const [name, tensor] of file.tensors) {
        const base = readWeight(m.store, name);
        const merged = tensorToF32(tensor);
        const layer = /^model\.layers\.(\d+)\.self_attn\.k_proj\.weight$/.exec(name);
        if (!layer) {
          t.deepEqual(merged, base, `${name} is copied bit for bit`);
          continue;
        }
        const a = tensors.get(`base_model.model.model.layers.${layer[1]}.self_attn.k_proj.lora_A.weight`)!;
        const b = tensors.get(`base_model.model.model.layers.${layer[1]}.self_attn.k_proj.lora_B.weight`)!;
        const [outF, inF] = tensor.shape;
        let worst = 0;
        for (let o = 0; o < outF; o++) {
          for (let i = 0; i < inF; i++) {
            let delta = 0;
            for (let k = 0; k < 2; k++) delta += b[o * 2 + k] * a[k * inF + i];
            worst = Math.max(worst, Math.abs(merged[o * inF + i] - (base[o * inF + i] + 1.5 * delta)));
          }
        }
        t.true(worst < 1e-6, `${name}: worst difference ${worst}`);
      }
    },
    { lora },
  );
});

test('mergeLoraInto adds scale · B · A in place', (t) => {
  // W [2, 3], A [1, 3], B [2, 1]
  const w = Float32Array.of(1, 2, 3, 4, 5, 6);
  mergeLoraInto(w, Float32Array.of(1, 0, -1), Float32Array.of(2, 3), 1, 0.5);
  t.deepEqual([...w], [2, 2, 2, 5.5, 5, 4.5]);
});

test('a checkpoint above the shard size is split into shards with an index that loadCheckpoint reads', async (t) => {
  await withFixture(async ({ m, work, adapterDir, lora, tensors }) => {
    const out = join(work, 'merged');
    const result = await mergeAdapter(m.dir, adapterDir, out, { maxShardBytes: 64 * 1024 });
    t.true(result.weightFiles.length > 1, `${result.weightFiles.length} shards`);
    t.is(
      result.weightFiles[0],
      `model-00001-of-${String(result.weightFiles.length).padStart(5, '0')}.safetensors`,
    );
    t.true(result.files.includes('model.safetensors.index.json'));
    const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8')) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    t.deepEqual(Object.keys(index.weight_map).sort(), [...m.store.entries.keys()].sort());
    let total = 0;
    for (const shard of result.weightFiles) {
      const header = await readSafetensorsHeader(join(out, shard));
      let bytes = 0;
      for (const info of header.tensors.values()) {
        t.is(index.weight_map[info.name], shard);
        bytes += info.dataOffsets[1] - info.dataOffsets[0];
      }
      // Only a tensor larger than the limit by itself makes a shard over the limit.
      t.true(bytes <= 64 * 1024 || header.tensors.size === 1, `${shard}: ${bytes} bytes`);
      total += bytes;
    }
    t.is(index.metadata.total_size, total);
    const merged = await evalLoss(await loadCheckpoint(out), rows);
    const withLora = await evalLoss(m, rows, { config: lora, tensors });
    t.true(Math.abs(merged - withLora) < 1e-5, `sharded ${merged} vs base + LoRA ${withLora}`);
  });
});

test('F16 and BF16 exports store that dtype and stay close to base + LoRA', async (t) => {
  await withFixture(async ({ m, work, adapterDir, lora, tensors }) => {
    const withLora = await evalLoss(m, rows, { config: lora, tensors });
    for (const dtype of ['F16', 'BF16'] as const) {
      const out = join(work, dtype);
      await mergeAdapter(m.dir, adapterDir, out, { dtype });
      const header = await readSafetensorsHeader(join(out, 'model.safetensors'));
      t.true(
        [...header.tensors.values()].every((i) => i.dtype === dtype),
        dtype,
      );
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { torch_dtype: string };
      t.is(config.torch_dtype, dtype === 'F16' ? 'float16' : 'bfloat16');
      const merged = await evalLoss(await loadCheckpoint(out), rows);
      t.log(`${dtype}: merged ${merged.toFixed(5)} vs base + LoRA ${withLora.toFixed(5)}`);
      t.true(Math.abs(merged - withLora) < 2e-2, `${dtype}: ${merged} vs ${withLora}`);
    }
  });
});

// --- adapters that do not fit ----------------------------------------------------------------------

test('refuses an adapter trained for a model of other dimensions, naming module and shapes', async (t) => {
  const m = await tinyModel();
  const other = await tinyModel({
    hiddenSize: 32,
    intermediateSize: 64,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 16,
  });
  const work = await mkdtemp(join(tmpdir(), 'fedit-merge-'));
  try {
    const lora: LoraConfig = { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] };
    const adapterDir = join(work, 'adapter');
    await writeAdapter(adapterDir, {
      config: { rank: 2, alpha: 4, targetModules: ['q_proj'] },
      tensors: randomLora(other, lora),
    });
    const out = join(work, 'merged');
    const err = await t.throwsAsync(mergeAdapter(m.dir, adapterDir, out), { instanceOf: MergeError });
    t.is(err?.code, 'MERGE_ADAPTER_MISMATCH');
    t.is(
      err?.message,
      `${adapterDir} adapts model.layers.0.self_attn.q_proj as 32 -> 32 features, but the base model's model.layers.0.self_attn.q_proj.weight is [64, 64] (64 -> 64); was the adapter trained for another model?`,
    );
    t.deepEqual(await readdir(work), ['adapter'], 'nothing written');
  } finally {
    m.cleanup();
    other.cleanup();
    await rm(work, { recursive: true, force: true });
  }
});

test('refuses adapters for modules the model lacks, or whose target_modules match nothing', async (t) => {
  const m = await tinyModel();
  try {
    const module = (path: string, inFeatures: number, outFeatures: number) => ({
      path,
      a: { dtype: 'F32' as const, shape: [2, inFeatures], data: new Uint8Array(8 * inFeatures) },
      b: { dtype: 'F32' as const, shape: [outFeatures, 2], data: new Uint8Array(8 * outFeatures) },
      inFeatures,
      outFeatures,
    });
    const config = { rank: 2, alpha: 4, targetModules: ['q_proj'] } as const;
    const cases: [Parameters<typeof planMerge>[0], RegExp][] = [
      [
        { config, modules: [module('model.layers.2.self_attn.q_proj', 64, 64)] },
        /adapts module model\.layers\.2\.self_attn\.q_proj, but the base model has no such linear layer \(it has 2 layers\)/,
      ],
      [
        { config: { ...config, targetModules: ['lm_head'] }, modules: [module('lm_head', 64, 256)] },
        /no such linear layer \(its lm_head is tied to embed_tokens\)/,
      ],
      [
        { config, modules: [module('model.layers.0.input_layernorm', 64, 64)] },
        /model\.layers\.0\.input_layernorm, but the base model has no such linear layer/,
      ],
      [
        {
          config: { ...config, targetModules: ['q_proj', 'c_attn'] },
          modules: [module('model.layers.0.self_attn.q_proj', 64, 64)],
        },
        /target_modules names "c_attn", which matches no layer of this llama model/,
      ],
    ];
    for (const [adapter, message] of cases) {
      const err = t.throws(() => planMerge(adapter, m.config, 'adapter'), { instanceOf: MergeError });
      t.is(err?.code, 'MERGE_ADAPTER_MISMATCH');
      t.regex(err?.message ?? '', message);
    }
  } finally {
    m.cleanup();
  }
});

test('refuses an adapter recorded as trained on another base, unless told to allow it', async (t) => {
  await withFixture(async ({ m, work }) => {
    const adapterDir = join(work, 'foreign');
    const lora: LoraConfig = { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] };
    await writeAdapter(adapterDir, {
      config: { rank: 2, alpha: 4, targetModules: ['q_proj'] },
      tensors: randomLora(m, lora),
      metadata: { baseModelIdentity: 'sha256:' + '0'.repeat(64) },
    });
    const err = await t.throwsAsync(mergeAdapter(m.dir, adapterDir, join(work, 'merged')), {
      instanceOf: MergeError,
    });
    t.is(err?.code, 'MERGE_OTHER_BASE');
    t.regex(err?.message ?? '', new RegExp(`trained on base model sha256:0{64}, but .* is ${m.identity}`));
    const result = await mergeAdapter(m.dir, adapterDir, join(work, 'merged'), { allowOtherBase: true });
    t.is(result.modules, m.config.numLayers);
  });
});

test('refuses to write into a folder that holds files, and names a missing model folder', async (t) => {
  await withFixture(async ({ m, work, adapterDir }) => {
    const out = join(work, 'taken');
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine');
    const err = await t.throwsAsync(mergeAdapter(m.dir, adapterDir, out), { instanceOf: MergeError });
    t.is(err?.code, 'MERGE_OUTPUT_EXISTS');
    t.deepEqual(await readdir(out), ['keep.txt']);

    const missing = join(work, 'no-model');
    await t.throwsAsync(mergeAdapter(missing, adapterDir, join(work, 'merged')), {
      instanceOf: MergeError,
      message: `${missing}: no such model folder`,
    });
    await t.throwsAsync(mergeAdapter(m.dir, adapterDir, join(work, 'merged'), { dtype: 'F8' as 'F16' }), {
      instanceOf: MergeError,
      message: /cannot write weights as "F8"; choose F32, F16, BF16/,
    });
    t.deepEqual((await readdir(work)).sort(), ['adapter', 'taken']);
  });
});

test('refuses an F16 export whose merged weights exceed F16 range, leaving no output', async (t) => {
  const lora: LoraConfig = { rank: 1, alpha: 1, dropout: 0, targets: ['o_proj'] };
  await withFixture(
    async ({ m, work, tensors }) => {
      const huge = new Map(tensors);
      const a = 'base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight';
      const b = 'base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight';
      huge.set(a, new Float32Array(huge.get(a)!.length).fill(300));
      huge.set(b, new Float32Array(huge.get(b)!.length).fill(300));
      const adapterDir = join(work, 'huge');
      await writeAdapter(adapterDir, {
        config: { rank: 1, alpha: 1, targetModules: ['o_proj'] },
        tensors: huge,
      });
      const err = await t.throwsAsync(
        mergeAdapter(m.dir, adapterDir, join(work, 'merged'), { dtype: 'F16' }),
        {
          instanceOf: MergeError,
        },
      );
      t.is(err?.code, 'MERGE_RANGE');
      t.regex(
        err?.message ?? '',
        /merged model\.layers\.1\.self_attn\.o_proj\.weight holds .* beyond F16's largest value/,
      );
      t.deepEqual((await readdir(work)).sort(), ['adapter', 'huge']);
    },
    { lora },
  );
});
