// `fedit export` as a person runs it: a real process started from the repository root the way
// `npm run fedit -- export ...` starts it, judged by its exit code, its output and the folder it writes.

import test from 'ava';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertCleanFailure, fedit } from '../../test/fixtures/fedit-cli.ts';
import { readSafetensorsFile, tensorToF32, writeAdapter } from '@fedit/shared';
import {
  loadCheckpoint,
  loraTensorSpecs,
  normalSampler,
  PRESETS,
  randomLlamaTensors,
  readWeight,
  writeHfCheckpoint,
  type LlamaConfig,
  type LoadedModel,
  type LoraConfig,
} from '@fedit/kernels';

const lora: LoraConfig = { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'] };

let dir: string;
let base: LoadedModel;
let adapter: string;
let adapterTensors: Map<string, Float32Array>;
let otherShapeAdapter: string;

async function writeRandomAdapter(
  path: string,
  model: LoadedModel,
  seed: number,
): Promise<Map<string, Float32Array>> {
  const normal = normalSampler(seed);
  const tensors = new Map(
    loraTensorSpecs(model.config, lora).map((s) => [
      s.name,
      Float32Array.from({ length: s.shape[0] * s.shape[1] }, () => normal() * 0.1),
    ]),
  );
  await writeAdapter(path, {
    config: { rank: lora.rank, alpha: lora.alpha, targetModules: lora.targets },
    tensors,
  });
  return tensors;
}

async function writeModel(path: string, overrides: Partial<LlamaConfig> = {}) {
  const config = { ...PRESETS.tiny, ...overrides };
  await writeHfCheckpoint(path, config, randomLlamaTensors(config, 0, 0.1));
  return loadCheckpoint(path);
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedit-export-'));
  base = await writeModel(join(dir, 'base'));
  await writeFile(join(dir, 'base', 'tokenizer.json'), '{"model": {"type": "BPE"}}');
  adapter = join(dir, 'adapter');
  adapterTensors = await writeRandomAdapter(adapter, base, 1);
  const other = await writeModel(join(dir, 'other-base'), {
    hiddenSize: 32,
    intermediateSize: 64,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 16,
  });
  otherShapeAdapter = join(dir, 'other-adapter');
  await writeRandomAdapter(otherShapeAdapter, other, 2);
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('export --merge writes a standalone checkpoint with the adapter merged in', async (t) => {
  const out = join(dir, 'merged');
  const r = await fedit('export', '--model', base.dir, '--adapter', adapter, '--out', out, '--merge');
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  t.regex(
    r.stdout,
    new RegExp(`^merged 4 adapted modules \\(scale 2\\) into ${escapeRegExp(base.dir)}$`, 'm'),
  );
  t.regex(r.stdout, /\(F32\): config\.json, model\.safetensors, tokenizer\.json$/m);
  t.regex(r.stdout, /^adapter {4}sha256:[0-9a-f]{64}$/m);
  t.regex(r.stdout, new RegExp(`^base model ${base.identity}$`, 'm'));
  t.deepEqual((await readdir(out)).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);

  const { tensors } = await readSafetensorsFile(join(out, 'model.safetensors'));
  const name = 'model.layers.1.self_attn.v_proj.weight';
  const merged = tensorToF32(tensors.get(name)!);
  const w = readWeight(base.store, name);
  const a = adapterTensors.get('base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight')!;
  const b = adapterTensors.get('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight')!;
  const [outF, inF] = tensors.get(name)!.shape;
  let worst = 0;
  for (let o = 0; o < outF; o++) {
    for (let i = 0; i < inF; i++) {
      const delta = b[o * 2] * a[i] + b[o * 2 + 1] * a[inF + i];
      worst = Math.max(worst, Math.abs(merged[o * inF + i] - (w[o * inF + i] + 2 * delta)));
    }
  }
  t.true(worst < 1e-6, `worst difference ${worst}`);
  t.deepEqual(tensorToF32(tensors.get('model.norm.weight')!), readWeight(base.store, 'model.norm.weight'));
  await loadCheckpoint(out);
});

test('export --dtype BF16 writes BF16 weights and accepts a lower-case dtype', async (t) => {
  const out = join(dir, 'merged-bf16');
  const r = await fedit(
    'export',
    '--model',
    base.dir,
    '--adapter',
    adapter,
    '--out',
    out,
    '--merge',
    '--dtype',
    'bf16',
  );
  t.is(r.code, 0, r.stderr);
  const { tensors } = await readSafetensorsFile(join(out, 'model.safetensors'));
  t.true([...tensors.values()].every((x) => x.dtype === 'BF16'));
  t.is(
    (JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { torch_dtype: string }).torch_dtype,
    'bfloat16',
  );
});

test('export without --merge says that merging is the supported mode', async (t) => {
  const out = join(dir, 'not-written');
  assertCleanFailure(
    t,
    await fedit('export', '--model', base.dir, '--adapter', adapter, '--out', out),
    /^fedit: fedit export needs --merge: .*only export mode .*\[EXPORT_MODE\]$/,
    2,
  );
  t.false((await readdir(dir)).includes('not-written'));
});

test('export of an adapter trained for a model of another shape fails and names the mismatch', async (t) => {
  const out = join(dir, 'mismatch');
  assertCleanFailure(
    t,
    await fedit('export', '--model', base.dir, '--adapter', otherShapeAdapter, '--out', out, '--merge'),
    /adapts model\.layers\.0\.self_attn\.q_proj as 32 -> 32 features, but the base model's model\.layers\.0\.self_attn\.q_proj\.weight is \[64, 64\] .*\[MERGE_ADAPTER_MISMATCH\]$/,
    65,
  );
  t.false(
    (await readdir(dir)).some((f) => f.includes('mismatch')),
    'nothing written, not even a staging folder',
  );
});

test('export with a missing model or adapter folder names it', async (t) => {
  const missingModel = join(dir, 'no-such-model');
  assertCleanFailure(
    t,
    await fedit('export', '--model', missingModel, '--adapter', adapter, '--out', join(dir, 'x'), '--merge'),
    new RegExp(`^fedit: ${escapeRegExp(missingModel)}: no such model folder \\[MERGE_MODEL_MISSING\\]$`),
    65,
  );
  const missingAdapter = join(dir, 'no-such-adapter');
  assertCleanFailure(
    t,
    await fedit(
      'export',
      '--model',
      base.dir,
      '--adapter',
      missingAdapter,
      '--out',
      join(dir, 'x'),
      '--merge',
    ),
    new RegExp(`^fedit: ${escapeRegExp(missingAdapter)}: no such adapter folder \\[ADAPTER_MISSING\\]$`),
    65,
  );
  const notAModel = join(dir, 'empty-model');
  await mkdir(notAModel);
  assertCleanFailure(
    t,
    await fedit('export', '--model', notAModel, '--adapter', adapter, '--out', join(dir, 'x'), '--merge'),
    /has no config\.json: .*\[CHECKPOINT\]$/,
    65,
  );
  t.false((await readdir(dir)).includes('x'));
});

test('export refuses an output folder that holds files', async (t) => {
  const out = join(dir, 'occupied');
  await mkdir(out);
  await writeFile(join(out, 'keep.txt'), 'mine');
  assertCleanFailure(
    t,
    await fedit('export', '--model', base.dir, '--adapter', adapter, '--out', out, '--merge'),
    /occupied: already holds files; choose a new or empty output folder \[MERGE_OUTPUT_EXISTS\]$/,
    65,
  );
  t.deepEqual(await readdir(out), ['keep.txt']);
});

test('export without a required option or with an unknown dtype fails with usage help', async (t) => {
  assertCleanFailure(
    t,
    await fedit('export', '--adapter', adapter, '--out', join(dir, 'x'), '--merge'),
    /required option '--model <dir>' not specified/,
    2,
  );
  assertCleanFailure(
    t,
    await fedit(
      'export',
      '--model',
      base.dir,
      '--adapter',
      adapter,
      '--out',
      join(dir, 'x'),
      '--merge',
      '--dtype',
      'F8',
    ),
    /option '--dtype <dtype>' argument 'F8' is invalid\. choose F32, F16, BF16\./,
    2,
  );
});

test('fedit --help lists export', async (t) => {
  const r = await fedit('--help');
  t.is(r.code, 0);
  t.regex(r.stdout, /^\s+export \[options\]\s+merge a LoRA adapter into its base model/m);
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
