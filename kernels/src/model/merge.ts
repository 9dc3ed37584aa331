// Merging a LoRA adapter into its base model: W' = W + scale · B · A for every adapted module
// (scale alpha / r, or alpha / sqrt(r) for rank-stabilised LoRA), written as a standalone Hugging
// Face checkpoint that loads anywhere without PEFT: config.json, the weights as model.safetensors
// (or shards listed in model.safetensors.index.json), and the base model's tokenizer files.
//
// The output folder appears complete or not at all: everything is written into a staging folder
// beside it, which is renamed into place at the end.

import {
  adapterScale,
  FeditError,
  MODEL_SIDE_FILES,
  pathExists,
  requireFolder,
  readAdapter,
  tensorFromF32,
  tensorToF32,
  writeSafetensorsFile,
  type AdapterConfig,
  type AdapterModule,
  type LoraAdapter,
  type Tensor,
} from '@fedit/shared';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { loadCheckpoint, expectedTensorShapes, type LoadedModel } from './checkpoint.ts';
import { parseLlamaConfig, type LlamaConfig } from './config.ts';
import { readWeight } from './weights.ts';

export const MERGE_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type MergeDType = (typeof MERGE_DTYPES)[number];

/**
 * Largest shard fedit writes, in bytes. A shard is assembled in memory before it is written, and
 * Node reads at most 2 GiB per call, so shards stay below that; larger checkpoints are split the
 * way transformers splits them (model-00001-of-00003.safetensors + model.safetensors.index.json).
 */
export const DEFAULT_MAX_SHARD_BYTES = 2_000_000_000;

/** Files of the base model that describe its tokenizer and generation settings, copied as they are
 * (@fedit/shared's MODEL_SIDE_FILES, which the model fetch downloads). */
export const TOKENIZER_FILES = MODEL_SIDE_FILES;

export type MergeErrorCode =
  /** The base model folder does not exist. */
  | 'MERGE_MODEL_MISSING'
  /** The adapter adapts a module the base model lacks, or one of other dimensions. */
  | 'MERGE_ADAPTER_MISMATCH'
  /** The adapter records that it was trained on another base model. */
  | 'MERGE_OTHER_BASE'
  /** The output folder already holds files. */
  | 'MERGE_OUTPUT_EXISTS'
  /** The requested output dtype is not one fedit writes. */
  | 'MERGE_DTYPE'
  /** A merged weight does not fit the output dtype (beyond F16's range, or not finite). */
  | 'MERGE_RANGE';

export class MergeError extends FeditError {
  declare readonly code: MergeErrorCode;

  constructor(code: MergeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export interface MergeOptions {
  /** Element type of the written weights (default F32). */
  dtype?: MergeDType;
  /** Shards larger than this are split (default DEFAULT_MAX_SHARD_BYTES). */
  maxShardBytes?: number;
  /** Where loadCheckpoint caches the converted base weights (default: <model>/.fedit-cache). */
  cacheDir?: string;
  /** Merge even if the adapter's metadata names another base model identity. */
  allowOtherBase?: boolean;
}

export interface MergeResult {
  outDir: string;
  dtype: MergeDType;
  /** Files written, relative to outDir, sorted. */
  files: string[];
  /** Weight files among them (one, or the shards). */
  weightFiles: string[];
  /** Number of modules whose weight the adapter changed. */
  modules: number;
  scale: number;
  adapterHash: string;
  /** fedit identity of the base model. */
  baseIdentity: string;
  /** The prompt template the adapter was trained with, when it records one (fedit.template). */
  template?: string;
}

/** The adapted modules, keyed by the base weight each one changes; throws unless the adapter fits. */
export function planMerge(
  adapter: { config: Pick<AdapterConfig, 'targetModules'>; modules: readonly AdapterModule[] },
  model: LlamaConfig,
  adapterSource = 'the adapter',
): Map<string, AdapterModule> {
  const shapes = expectedTensorShapes(model);
  const plan = new Map<string, AdapterModule>();
  for (const module of adapter.modules) {
    const weight = `${module.path}.weight`;
    const shape = shapes.get(weight);
    if (!shape || shape.length !== 2) {
      throw new MergeError(
        'MERGE_ADAPTER_MISMATCH',
        `${adapterSource} adapts module ${module.path}, but the base model has no such linear layer${missingModuleHint(module.path, model)}; was the adapter trained for another model?`,
      );
    }
    const [out, inFeatures] = shape;
    if (out !== module.outFeatures || inFeatures !== module.inFeatures) {
      throw new MergeError(
        'MERGE_ADAPTER_MISMATCH',
        `${adapterSource} adapts ${module.path} as ${module.inFeatures} -> ${module.outFeatures} features, but the base model's ${weight} is [${shape.join(', ')}] (${inFeatures} -> ${out}); was the adapter trained for another model?`,
      );
    }
    plan.set(weight, module);
  }
  // PEFT refuses to load an adapter whose target_modules name nothing in the model; so does fedit.
  const targets = adapter.config.targetModules;
  if (typeof targets !== 'string') {
    const linear = [...shapes]
      .filter(([name, shape]) => name.endsWith('.weight') && shape.length === 2)
      .map(([name]) => name.slice(0, -'.weight'.length));
    for (const target of targets) {
      if (!linear.some((path) => path === target || path.endsWith(`.${target}`))) {
        throw new MergeError(
          'MERGE_ADAPTER_MISMATCH',
          `${adapterSource}: target_modules names "${target}", which matches no layer of this ${model.modelType} model`,
        );
      }
    }
  }
  return plan;
}

/** weight += scale · B · A, in place: weight [out, in], a [rank, in], b [out, rank], row-major. */
export function mergeLoraInto(
  weight: Float32Array,
  a: Float32Array,
  b: Float32Array,
  rank: number,
  scale: number,
): void {
  const inFeatures = a.length / rank;
  const out = b.length / rank;
  if (weight.length !== out * inFeatures) {
    throw new Error(`mergeLoraInto: weight has ${weight.length} values, B·A has ${out} x ${inFeatures}`);
  }
  // One output row at a time, summed over the rank in float64 before the single rounding to float32.
  const row = new Float64Array(inFeatures);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < rank; k++) {
      const c = b[o * rank + k];
      if (c === 0) continue;
      const offset = k * inFeatures;
      for (let i = 0; i < inFeatures; i++) row[i] += c * a[offset + i];
    }
    const offset = o * inFeatures;
    for (let i = 0; i < inFeatures; i++) weight[offset + i] += scale * row[i];
  }
}

/**
 * Merges the adapter in `adapterDir` into the checkpoint in `modelDir` and writes the result to
 * `outDir`, which must not exist or be empty.
 */
export async function mergeAdapter(
  modelDir: string,
  adapterDir: string,
  outDir: string,
  options: MergeOptions = {},
): Promise<MergeResult> {
  const dtype = options.dtype ?? 'F32';
  if (!(MERGE_DTYPES as readonly string[]).includes(dtype)) {
    throw new MergeError(
      'MERGE_DTYPE',
      `cannot write weights as ${JSON.stringify(dtype)}; choose ${MERGE_DTYPES.join(', ')}`,
    );
  }
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new RangeError(`maxShardBytes must be a positive integer, got ${maxShardBytes}`);
  }
  const target = resolve(outDir);
  await assertEmptyOrMissing(target);
  await assertModelFolder(modelDir);
  const adapter = await readAdapter(adapterDir);
  // Checked against config.json first: converting the weights of a large model takes minutes.
  const declared = await declaredConfig(modelDir);
  if (declared) planMerge(adapter, declared, adapterDir);
  const model = await loadCheckpoint(modelDir, { cacheDir: options.cacheDir });
  const plan = planMerge(adapter, model.config, adapterDir);
  const recorded = adapter.metadata.baseModelIdentity;
  if (recorded !== undefined && recorded !== model.identity && !options.allowOtherBase) {
    throw new MergeError(
      'MERGE_OTHER_BASE',
      `${adapterDir} was trained on base model ${recorded}, but ${modelDir} is ${model.identity}; merge into the model it was trained on (or allow another base if you know they match)`,
    );
  }
  const scale = adapterScale(adapter.config);

  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(join(parent, `.${basename(target)}.tmp-`));
  try {
    const weightFiles = await writeMergedWeights(staging, model, adapter, plan, scale, dtype, maxShardBytes);
    const copied = await copyModelFiles(modelDir, staging, dtype);
    await assertEmptyOrMissing(target);
    if (await pathExists(target)) await rmdir(target);
    await rename(staging, target);
    await syncDirectory(parent);
    return {
      outDir: target,
      dtype,
      files: [...weightFiles, ...copied, ...(weightFiles.length > 1 ? [SHARD_INDEX] : [])].sort(),
      weightFiles,
      modules: plan.size,
      scale,
      adapterHash: adapter.hash,
      baseIdentity: model.identity,
      template: adapter.metadata.extra?.template,
    };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

const SHARD_INDEX = 'model.safetensors.index.json';
const DTYPE_BYTES: Record<MergeDType, number> = { F32: 4, F16: 2, BF16: 2 };
const TORCH_DTYPE: Record<MergeDType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
// Values from 65520 up round to infinity in F16 (65504 is the largest finite half).
const F16_OVERFLOW = 65520;

/** Writes every weight of the model, merged where the adapter adapts it; returns the file names. */
async function writeMergedWeights(
  dir: string,
  model: LoadedModel,
  adapter: LoraAdapter,
  plan: Map<string, AdapterModule>,
  scale: number,
  dtype: MergeDType,
  maxShardBytes: number,
): Promise<string[]> {
  const shards: { names: string[]; bytes: number }[] = [];
  for (const [name, shape] of expectedTensorShapes(model.config)) {
    const bytes = shape.reduce((p, d) => p * d, 1) * DTYPE_BYTES[dtype];
    const last = shards.at(-1);
    if (last && last.bytes + bytes <= maxShardBytes) {
      last.names.push(name);
      last.bytes += bytes;
    } else shards.push({ names: [name], bytes });
  }
  const count = shards.length;
  const fileName = (i: number) =>
    count === 1
      ? 'model.safetensors'
      : `model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
  const template = adapter.metadata.extra?.template;
  const metadata: Record<string, string> = {
    format: 'pt',
    'fedit.base_model_identity': model.identity,
    'fedit.merged_adapter': adapter.hash,
    // The prompt template the adapter was trained with: the merged model answers well only to it.
    ...(template === undefined ? {} : { 'fedit.template': template }),
  };
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const tensors = new Map<string, Tensor>();
    for (const name of shard.names) {
      const values = readWeight(model.store, name);
      const module = plan.get(name);
      if (module) {
        mergeLoraInto(values, tensorToF32(module.a), tensorToF32(module.b), adapter.config.rank, scale);
      }
      assertRepresentable(name, values, dtype);
      tensors.set(name, tensorFromF32(model.store.entries.get(name)!.shape, values, dtype));
      weightMap[name] = fileName(i);
    }
    await writeSafetensorsFile(join(dir, fileName(i)), tensors, metadata);
  }
  if (count > 1) {
    const totalSize = shards.reduce((s, shard) => s + shard.bytes, 0);
    await writeSynced(
      join(dir, SHARD_INDEX),
      JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n',
    );
  }
  return shards.map((_, i) => fileName(i));
}

function assertRepresentable(name: string, values: Float32Array, dtype: MergeDType): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v) || (dtype === 'F16' && Math.abs(v) >= F16_OVERFLOW)) {
      throw new MergeError(
        'MERGE_RANGE',
        Number.isFinite(v)
          ? `merged ${name} holds ${v}, beyond F16's largest value 65504; export as BF16 or F32`
          : `merged ${name} holds ${v}; the base weights or the adapter are broken`,
      );
    }
  }
}

/** config.json (with torch_dtype set to the written dtype) and the tokenizer files, copied from the base. */
async function copyModelFiles(modelDir: string, dir: string, dtype: MergeDType): Promise<string[]> {
  const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  config.torch_dtype = TORCH_DTYPE[dtype];
  await writeSynced(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const copied = ['config.json'];
  for (const file of TOKENIZER_FILES) {
    if (!(await pathExists(join(modelDir, file)))) continue;
    await copyFile(join(modelDir, file), join(dir, file));
    copied.push(file);
  }
  return copied;
}

/** The model's config.json, or undefined when unreadable (loadCheckpoint then says why). */
async function declaredConfig(modelDir: string): Promise<LlamaConfig | undefined> {
  try {
    return parseLlamaConfig(JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')));
  } catch {
    return undefined;
  }
}

async function assertModelFolder(dir: string): Promise<void> {
  await requireFolder(dir, (why) =>
    why === 'missing'
      ? new MergeError('MERGE_MODEL_MISSING', `${dir}: no such model folder`)
      : new MergeError(
          'MERGE_MODEL_MISSING',
          `${dir}: not a folder; give the Hugging Face model folder that holds config.json`,
        ),
  );
}

async function assertEmptyOrMissing(dir: string): Promise<void> {
  if (!(await pathExists(dir))) return;
  if (!(await stat(dir)).isDirectory()) {
    throw new MergeError(
      'MERGE_OUTPUT_EXISTS',
      `${dir}: exists and is not a folder; choose a new output folder`,
    );
  }
  if ((await readdir(dir)).length > 0) {
    throw new MergeError(
      'MERGE_OUTPUT_EXISTS',
      `${dir}: already holds files; choose a new or empty output folder`,
    );
  }
}

async function writeSynced(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes the final rename durable; some systems cannot open or fsync a directory, which is fine. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // the rename has happened either way
  }
}

function missingModuleHint(path: string, model: LlamaConfig): string {
  const layer = /^model\.layers\.(\d+)\./.exec(path);
  if (layer && Number(layer[1]) >= model.numLayers) return ` (it has ${model.numLayers} layers)`;
  if (path === 'lm_head' && model.tieWordEmbeddings) return ' (its lm_head is tied to embed_tokens)';
  return '';
}
