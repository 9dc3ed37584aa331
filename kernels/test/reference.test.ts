// The whole compiled step (forward, masked next-token loss, backward to every LoRA tensor) against
// the PyTorch reference, on tiny random checkpoints written and loaded through the real code.

import test from 'ava';
import * as ort from 'onnxruntime-node';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS, type LlamaConfig } from '../src/model/config.ts';
import { loadCheckpoint, writeHfCheckpoint } from '../src/model/checkpoint.ts';
import { LORA_TARGETS, loraTensorSpecs, type LoraConfig } from '../src/model/lora.ts';
import { normalSampler, randomLlamaTensors } from '../src/model/random.ts';
import { createSession } from '../src/runtime/session.ts';
import { makeBatch, type TokenRow } from '../src/train/batch.ts';
import { buildStepGraph, io } from '../src/train/graphs.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  REFERENCE_SCRIPT,
  referenceCommand,
  referenceUnavailable as whyNoReference,
} from '../bench/reference.ts';

const referenceUnavailable = whyNoReference();
/** Adds explicit head_dim and rope_scaling to the reference (see the script's own comment). */
const REFERENCE_EXT = fileURLToPath(new URL('./helpers/torch_reference_ext.py', import.meta.url));
function runReference(args: string[], extended: boolean): void {
  const ref = referenceCommand()!;
  const argv = extended ? [REFERENCE_EXT, REFERENCE_SCRIPT, ...args] : [...ref.args, ...args];
  execFileSync(ref.python, argv, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
}

interface Case {
  title: string;
  model: LlamaConfig;
  lora: LoraConfig;
  rows: TokenRow[];
  batch: number;
  seq: number;
  /** Uses config.json fields the plain reference ignores (head_dim, rope_scaling): run it through torch_reference_ext.py. */
  extended?: boolean;
}

const tiny = PRESETS.tiny;
const rowsFor = (vocab: number, lengths: number[], promptLen: number, seed: number): TokenRow[] => {
  const rnd = normalSampler(seed);
  return lengths.map((n) => {
    const ids = Array.from({ length: n }, () => Math.floor(Math.abs(rnd() * 1000)) % vocab);
    return { inputIds: ids, labels: ids.map((t, i) => (i < promptLen ? -100 : t)) };
  });
};

const cases: Case[] = [
  {
    title: 'GQA 4:2, tied head, LoRA on q and v',
    model: tiny,
    lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] },
    rows: rowsFor(tiny.vocabSize, [12, 12], 0, 1),
    batch: 2,
    seq: 12,
  },
  {
    title: 'multi-head (no GQA), untied head, all seven targets, padded rows and masked prompts',
    model: { ...tiny, numKvHeads: 4, tieWordEmbeddings: false },
    lora: { rank: 3, alpha: 16, dropout: 0, targets: [...LORA_TARGETS] },
    rows: rowsFor(tiny.vocabSize, [16, 9, 5], 3, 2),
    batch: 3,
    seq: 16,
  },
  {
    title: 'Qwen2-style q/k/v bias, GQA 4:1, all seven targets, padded batch',
    model: { ...tiny, modelType: 'qwen2', numKvHeads: 1, qkvBias: true, ropeTheta: 1e6, rmsNormEps: 1e-6 },
    lora: { rank: 8, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] },
    rows: rowsFor(tiny.vocabSize, [10, 7], 2, 3),
    batch: 2,
    seq: 10,
  },
  {
    // head_dim 16, theta 10000: wavelengths 6.3, 20, 63 | 199, 628 | 1987, 6283, 19869 against the
    // bands 128 and 1024, so frequencies are kept, blended and divided (three of each kind or so).
    title: 'Llama 3.1-style llama3 rope_scaling (all three frequency bands), GQA 4:2, LoRA on q, k, v',
    model: {
      ...tiny,
      ropeScaling: {
        type: 'llama3',
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 8,
        originalMaxPositionEmbeddings: 1024,
      },
    },
    lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj'] },
    rows: rowsFor(tiny.vocabSize, [16, 11], 2, 4),
    batch: 2,
    seq: 16,
    extended: true,
  },
  {
    title:
      'explicit head_dim 24 (not hidden/heads = 16), llama attention_bias (q/k/v and o_proj bias), linear rope_scaling, all seven targets',
    model: {
      ...tiny,
      headDim: 24,
      qkvBias: true,
      tieWordEmbeddings: false,
      ropeScaling: { type: 'linear', factor: 4 },
    },
    lora: { rank: 4, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] },
    rows: rowsFor(tiny.vocabSize, [12, 8], 3, 5),
    batch: 2,
    seq: 12,
    extended: true,
  },
];

function initialLora(c: Case, seed: number): Map<string, Float64Array> {
  // B is non-zero on purpose: with PEFT's B = 0 every lora_A gradient is zero and checks nothing.
  const rnd = normalSampler(seed);
  return new Map(
    loraTensorSpecs(c.model, c.lora).map((s) => [
      s.name,
      Float64Array.from({ length: s.shape[0] * s.shape[1] }, () => rnd() * 0.1),
    ]),
  );
}

function nest(data: ArrayLike<number>, shape: number[]): unknown {
  if (shape.length === 1) return Array.from(data);
  const step = shape.slice(1).reduce((a, b) => a * b, 1);
  return Array.from({ length: shape[0] }, (_, i) =>
    nest(Array.prototype.slice.call(data, i * step, (i + 1) * step), shape.slice(1)),
  );
}

async function ours(
  c: Case,
  dir: string,
  dtype: 'float32' | 'float64',
  init: Map<string, Float64Array>,
  model: LlamaConfig = c.model,
) {
  const { store } = await loadCheckpoint(dir, { dtype, cacheDir: join(dir, `cache-${dtype}`) });
  const graph = buildStepGraph('grad_step', {
    model,
    weights: store,
    lora: c.lora,
    batch: c.batch,
    seq: c.seq,
    optimizer: DEFAULT_ADAMW,
    seed: 0,
  });
  const session = await createSession(graph, { modelDir: store.dir });
  const F = dtype === 'float32' ? Float32Array : Float64Array;
  const b = makeBatch(model, c.rows, c.batch, c.seq, dtype);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: b.input_ids,
    target_ids: b.target_ids,
    loss_mask: b.loss_mask,
    attention_bias: b.attention_bias,
    rope_cos: b.rope_cos,
    rope_sin: b.rope_sin,
    grad_scale: new ort.Tensor(dtype, F.of(1), []),
  };
  for (const s of loraTensorSpecs(c.model, c.lora)) {
    feeds[io.param(s.name)] = new ort.Tensor(dtype, F.from(init.get(s.name)!), s.shape);
    feeds[io.grad(s.name)] = new ort.Tensor(dtype, new F(s.shape[0] * s.shape[1]), s.shape);
  }
  const out = await session.run(feeds);
  await session.release();
  const grads = new Map(
    loraTensorSpecs(c.model, c.lora).map((s) => [
      s.name,
      out[io.next(io.grad(s.name))].data as Float32Array | Float64Array,
    ]),
  );
  return { loss: Number(out.loss.data[0]), grads };
}

function reference(c: Case, dir: string, init: Map<string, Float64Array>, float64: boolean) {
  // The reference pads nothing: give it the same right-padded rows with ignored labels.
  const pad = (r: TokenRow, key: 'inputIds' | 'labels', fill: number) => [
    ...r[key],
    ...new Array(c.seq - r.inputIds.length).fill(fill),
  ];
  const rows = [...c.rows];
  const batchFile = join(dir, 'batch.json');
  const outFile = join(dir, `ref-${float64 ? 64 : 32}.json`);
  writeFileSync(
    batchFile,
    JSON.stringify({
      input_ids: rows.map((r) => pad(r, 'inputIds', 0)),
      labels: rows.map((r) => pad(r, 'labels', -100)),
      lora: { rank: c.lora.rank, alpha: c.lora.alpha, targets: c.lora.targets },
      lora_init: Object.fromEntries(
        loraTensorSpecs(c.model, c.lora).map((s) => [s.name, nest(init.get(s.name)!, s.shape)]),
      ),
    }),
  );
  runReference(
    ['grads', '--model', dir, '--batch', batchFile, '--out', outFile, ...(float64 ? ['--float64'] : [])],
    c.extended ?? false,
  );
  const ref = JSON.parse(readFileSync(outFile, 'utf8')) as { loss: number; grads: Record<string, unknown> };
  return {
    loss: ref.loss,
    grads: new Map(Object.entries(ref.grads).map(([k, v]) => [k, (v as number[][]).flat() as number[]])),
  };
}

/** Worst over tensors of max|ours - ref| / max|ref|. */
function worstGradError(
  a: Map<string, ArrayLike<number>>,
  b: Map<string, number[]>,
): { err: number; name: string } {
  let worst = { err: 0, name: '' };
  for (const [name, ref] of b) {
    const mine = a.get(name)!;
    const scale = Math.max(...ref.map(Math.abs), 1e-30);
    let diff = 0;
    for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(mine[i] - ref[i]));
    if (diff / scale > worst.err) worst = { err: diff / scale, name };
  }
  return worst;
}

for (const [i, c] of cases.entries()) {
  const run = referenceUnavailable ? test.skip : test;
  run(`matches the PyTorch reference step: ${c.title}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fedit-ref-'));
    try {
      await writeHfCheckpoint(dir, c.model, randomLlamaTensors(c.model, 10 + i, 0.1));
      const init = initialLora(c, 100 + i);
      t.is(init.size, loraTensorSpecs(c.model, c.lora).length);
      // the fields under test survive config.json
      const loaded = await loadCheckpoint(dir, { cacheDir: join(dir, 'cache-config') });
      t.like(loaded.config, {
        headDim: c.model.headDim,
        ropeScaling: c.model.ropeScaling,
        qkvBias: c.model.qkvBias,
      });
      // The reference adds every bias the safetensors file has, so an o_proj.bias we failed to load
      // would show as a different loss; and it is really there:
      t.is(
        loaded.store.entries.has('model.layers.0.self_attn.o_proj.bias'),
        c.model.modelType === 'llama' && c.model.qkvBias,
      );
      if (c.model.ropeScaling) {
        // the case checks something only if the scaling changes the step at these positions
        const { ropeScaling: _unscaled, ...plain } = c.model;
        const scaled = await ours(c, dir, 'float64', init);
        const unscaled = await ours(c, dir, 'float64', init, plain);
        t.true(
          Math.abs(scaled.loss - unscaled.loss) > 1e-6 * Math.abs(unscaled.loss),
          `rope_scaling changes the loss (${scaled.loss} vs ${unscaled.loss})`,
        );
      }
      for (const dtype of ['float64', 'float32'] as const) {
        const mine = await ours(c, dir, dtype, init);
        const ref = reference(c, dir, init, dtype === 'float64');
        const tol = dtype === 'float64' ? 1e-9 : 1e-4;
        t.true(ref.grads.size === mine.grads.size, 'same set of LoRA tensors');
        t.true(
          Math.abs(mine.loss - ref.loss) / Math.abs(ref.loss) < tol,
          `${dtype} loss ${mine.loss} vs reference ${ref.loss}`,
        );
        const worst = worstGradError(mine.grads, ref.grads);
        t.log(
          `${dtype}: loss ${mine.loss.toFixed(6)} (ref ${ref.loss.toFixed(6)}), worst gradient error ${worst.err.toExponential(2)} (${worst.name})`,
        );
        t.true(
          worst.err < tol,
          `${dtype} gradient of ${worst.name} off by ${worst.err.toExponential(2)} relative`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
if (referenceUnavailable) {
  test('PyTorch reference checks are skipped', (t) => {
    t.log(`skipped: ${referenceUnavailable}`);
    t.pass();
  });
}
