// A LoRA adapter on disk, in the layout Hugging Face PEFT reads and writes:
//
//   <dir>/adapter_config.json          PEFT's LoraConfig (config.ts)
//   <dir>/adapter_model.safetensors    one lora_A [r, in] and one lora_B [out, r] per adapted module,
//                                      under PEFT's names (names.ts); F32 unless asked otherwise
//
// fedit's own annotations (the base model's identity, the fedit version, the tensors' content hash)
// go in the safetensors `__metadata__` under "fedit." keys, next to the "format": "pt" that PEFT and
// transformers expect. Not in adapter_config.json: PEFT before 0.13 raises a TypeError on any key
// its LoraConfig does not know, and vLLM and llama.cpp's converter read that file too, while every
// reader of safetensors ignores metadata keys it does not use.
//
// Writing goes to a fresh folder beside the target that is renamed into place once both files are
// complete and fsynced; replacing moves the old folder aside first, so a reader sees the old
// adapter or the new one, never one file of each (adapter-folder.ts: commitFolder says how each crash and each
// concurrent read ends). Only an earlier adapter is ever replaced: a folder holding anything else
// is refused (checkAdapterTarget).

import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { FloatDType } from '../tensors/dtype.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { isErrno, pathExists, requireFolder } from '../fs/paths.ts';
import { hashTensors } from '../tensors/hash.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../tensors/safetensors-file.ts';
import { tensorFromF32, tensorToF32, type Tensor } from '../tensors/tensor.ts';
import { AdapterError } from './adapter-error.ts';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  README_FILE,
  TRAINER_STATE_FILE,
  checkAdapterTarget,
  commitFolder,
  movedAsideMidWrite,
  reachable,
} from './adapter-folder.ts';
import { FEDIT_VERSION } from '../version.ts';
import {
  makeAdapterConfig,
  parseAdapterConfig,
  targetsModule,
  toPeftAdapterConfig,
  type AdapterConfig,
  type AdapterConfigInit,
} from './config.ts';
import { explainForeignTensorName, parsePeftLoraTensorName, peftLoraTensorName } from './names.ts';

export { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, README_FILE, TRAINER_STATE_FILE, checkAdapterTarget };

const SHARED_VERSION = FEDIT_VERSION;

/** fedit's annotations of an adapter, kept in the safetensors metadata under "fedit." keys. */
export interface AdapterMetadata {
  /** The fedit identity (sha256 of config and weights) of the base model it was trained on. */
  baseModelIdentity?: string;
  /** The fedit version that wrote it; writeAdapter fills in its own when not given. */
  feditVersion?: string;
  /** Further annotations (federation, round, ...), stored as "fedit.<key>". */
  extra?: Record<string, string>;
}

/** One adapted module: W' = W + scale · B · A for the base weight W at `path` + ".weight". */
export interface AdapterModule {
  /** The module's path in the Hugging Face model, e.g. "model.layers.3.self_attn.q_proj". */
  path: string;
  a: Tensor;
  b: Tensor;
  inFeatures: number;
  outFeatures: number;
}

export interface LoraAdapter {
  config: AdapterConfig;
  /** By PEFT name, as stored (F32, F16 or BF16). */
  tensors: Map<string, Tensor>;
  /** Sorted by module path. */
  modules: AdapterModule[];
  metadata: AdapterMetadata;
  /** hashTensors(tensors): the adapter's content identity. */
  hash: string;
}

/** A tensor to write: a Tensor, or bare Float32 values whose shape follows from the rank. */
export type AdapterTensorInput = Tensor | Float32Array;

export interface WriteAdapterOptions {
  /** Element type of the stored tensors (default F32). */
  dtype?: FloatDType;
  /**
   * Replace an earlier adapter in `dir`. Only an adapter is ever replaced: a folder holding any
   * other file is refused, overwrite or not (see checkAdapterTarget).
   */
  overwrite?: boolean;
  /**
   * A model card written beside the two files as README.md (as PEFT's save_pretrained does), in
   * the same staging folder, so the card and the adapter it describes arrive together.
   */
  readme?: string;
  /** A training run's loss history, written beside the two files as trainer_state.json. */
  trainerState?: string;
}

const METADATA_PREFIX = 'fedit.';
const METADATA_KEYS = {
  baseModelIdentity: 'fedit.base_model_identity',
  feditVersion: 'fedit.version',
  tensorsHash: 'fedit.tensors_hash',
} as const;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/**
 * Checks that `tensors` are a LoRA adapter for `config`: every name a PEFT LoRA name, A and B
 * paired, A [r, in] and B [out, r] with r = config.rank, every module one target_modules names,
 * every value finite. Returns the modules, sorted by path. `source` labels error messages.
 */
export function validateAdapterTensors(
  config: AdapterConfig,
  tensors: ReadonlyMap<string, Tensor>,
  source = 'adapter',
): AdapterModule[] {
  if (tensors.size === 0) {
    throw new AdapterError(
      'ADAPTER_EMPTY',
      `${source}: holds no tensors; a LoRA adapter has lora_A and lora_B pairs`,
    );
  }
  const factors = new Map<string, { a?: Tensor; b?: Tensor }>();
  for (const [name, tensor] of tensors) {
    const parsed = parsePeftLoraTensorName(name);
    if (!parsed) {
      throw new AdapterError(
        'ADAPTER_TENSOR_NAME',
        `${source}: tensor ${name} is not a PEFT LoRA tensor: ${explainForeignTensorName(name)}`,
      );
    }
    if (!FLOAT_DTYPES.has(tensor.dtype)) {
      throw new AdapterError(
        'ADAPTER_SHAPE',
        `${source}: tensor ${name} has dtype ${tensor.dtype}; LoRA factors are F32, F16 or BF16`,
      );
    }
    const entry = factors.get(parsed.modulePath) ?? {};
    entry[parsed.factor === 'A' ? 'a' : 'b'] = tensor;
    factors.set(parsed.modulePath, entry);
  }

  const modules: AdapterModule[] = [];
  for (const path of [...factors.keys()].sort()) {
    const { a, b } = factors.get(path)!;
    if (!a || !b) {
      const [has, lacks] = a ? ['A', 'B'] : ['B', 'A'];
      throw new AdapterError(
        'ADAPTER_UNPAIRED',
        `${source}: ${peftLoraTensorName(path, has as 'A' | 'B')} has no partner ${peftLoraTensorName(path, lacks as 'A' | 'B')}`,
      );
    }
    const aName = peftLoraTensorName(path, 'A');
    const bName = peftLoraTensorName(path, 'B');
    if (a.shape.length !== 2 || a.shape[0] !== config.rank) {
      throw new AdapterError(
        'ADAPTER_SHAPE',
        `${source}: ${aName} has shape [${a.shape.join(', ')}]; lora_A must be [r, in_features] with r = ${config.rank}`,
      );
    }
    if (b.shape.length !== 2 || b.shape[1] !== config.rank) {
      throw new AdapterError(
        'ADAPTER_SHAPE',
        `${source}: ${bName} has shape [${b.shape.join(', ')}]; lora_B must be [out_features, r] with r = ${config.rank}`,
      );
    }
    if (!targetsModule(config.targetModules, path)) {
      throw new AdapterError(
        'ADAPTER_TARGET',
        `${source}: ${aName} adapts module ${path}, which target_modules ${JSON.stringify(config.targetModules)} does not name`,
      );
    }
    assertFinite(aName, a, source);
    assertFinite(bName, b, source);
    modules.push({ path, a, b, inFeatures: a.shape[1], outFeatures: b.shape[0] });
  }
  return modules;
}

/**
 * Writes a PEFT-compatible adapter folder atomically and returns the adapter as written (tensors
 * in the stored dtype, their content hash). Everything is validated before the disk is touched.
 */
export async function writeAdapter(
  dir: string,
  adapter: {
    config: AdapterConfigInit;
    tensors: ReadonlyMap<string, AdapterTensorInput>;
    metadata?: AdapterMetadata;
  },
  options: WriteAdapterOptions = {},
): Promise<LoraAdapter> {
  const dtype = options.dtype ?? 'F32';
  const config = makeAdapterConfig(adapter.config);
  const tensors = new Map<string, Tensor>();
  for (const [name, value] of adapter.tensors)
    tensors.set(name, storedTensor(name, value, config.rank, dtype));
  let modules: AdapterModule[];
  try {
    modules = validateAdapterTensors(config, tensors, dir);
  } catch (err) {
    if (err instanceof AdapterError && err.code === 'ADAPTER_NOT_FINITE' && dtype === 'F16') {
      throw new AdapterError(
        'ADAPTER_NOT_FINITE',
        `${err.message} after conversion to F16, whose largest value is 65504; write F32 or BF16 instead`,
      );
    }
    throw err;
  }
  const hash = hashTensors(tensors);
  const metadata: AdapterMetadata = {
    ...adapter.metadata,
    feditVersion: adapter.metadata?.feditVersion ?? SHARED_VERSION,
  };
  const fileMetadata = encodeMetadata(metadata, hash);

  const target = resolve(dir);
  await checkAdapterTarget(target, options);
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(join(parent, `.${basename(target)}.tmp-`));
  try {
    await writeSafetensorsFile(join(staging, ADAPTER_WEIGHTS_FILE), tensors, fileMetadata);
    await writeFileAtomic(
      join(staging, ADAPTER_CONFIG_FILE),
      JSON.stringify(toPeftAdapterConfig(config), null, 2) + '\n',
    );
    if (options.readme !== undefined) await writeFileAtomic(join(staging, README_FILE), options.readme);
    if (options.trainerState !== undefined)
      await writeFileAtomic(join(staging, TRAINER_STATE_FILE), options.trainerState);
    await commitFolder(staging, target, options.overwrite ?? false);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  return { config, tensors, modules, metadata, hash };
}

/** Reads and validates an adapter folder written by PEFT or by fedit. */
export async function readAdapter(dir: string): Promise<LoraAdapter> {
  // A reader changes nothing on disk (another process may be writing right now), and reads one
  // folder from start to end: if a writer renamed it away meanwhile, the two files may come from
  // two adapters, so it reads again (see commitFolder for the states a writer passes through).
  for (let attempt = 1; ; attempt++) {
    const folder = await folderToRead(dir);
    const before = await folderIdentity(folder);
    const read = await readAdapterFolder(folder).then(
      (adapter) => ({ adapter }),
      (err: unknown) => ({ err }),
    );
    if ((await folderIdentity(folder)) === before) {
      if ('adapter' in read) return read.adapter;
      throw read.err;
    }
    if (attempt === 3) {
      throw new AdapterError(
        'ADAPTER_MISSING',
        `${dir}: was replaced by another write each time it was read; read it again once that write is done`,
      );
    }
  }
}

/**
 * The folder that holds the adapter `dir` names: `dir` itself, or, while a write is between its
 * renames (or was killed there), the earlier adapter it moved aside, read where it lies.
 */
async function folderToRead(dir: string): Promise<string> {
  if (await reachable(dir)) return dir;
  const aside = await movedAsideMidWrite(resolve(dir));
  return aside.length === 1 ? aside[0] : dir;
}

/** Tells one folder from another that later took its name (device and inode); undefined if none is there. */
async function folderIdentity(path: string): Promise<string | undefined> {
  const stats = await stat(path, { bigint: true }).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  });
  return stats && `${stats.dev}:${stats.ino}`;
}

async function readAdapterFolder(dir: string): Promise<LoraAdapter> {
  await assertFolder(dir);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const configText = await readFile(configPath, 'utf8').catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) {
      throw new AdapterError(
        'ADAPTER_MISSING',
        `${dir}: has no ${ADAPTER_CONFIG_FILE}; is this a PEFT adapter folder?`,
      );
    }
    throw err;
  });
  const config = parseAdapterConfig(configText, configPath);
  if (!(await pathExists(weightsPath))) {
    if (await pathExists(join(dir, 'adapter_model.bin'))) {
      throw new AdapterError(
        'ADAPTER_UNSUPPORTED',
        `${dir}: holds adapter_model.bin (a PyTorch pickle), which fedit does not load; re-save it with PEFT's save_pretrained(safe_serialization=True)`,
      );
    }
    throw new AdapterError('ADAPTER_MISSING', `${dir}: has no ${ADAPTER_WEIGHTS_FILE}`);
  }
  const file = await readSafetensorsFile(weightsPath);
  const modules = validateAdapterTensors(config, file.tensors, weightsPath);
  const hash = hashTensors(file.tensors);
  const recorded = file.metadata[METADATA_KEYS.tensorsHash];
  if (recorded !== undefined && recorded !== hash) {
    throw new AdapterError(
      'ADAPTER_HASH',
      `${weightsPath}: its tensors hash to ${hash}, but fedit recorded ${recorded} when it wrote them; the file was changed or damaged since`,
    );
  }
  return { config, tensors: file.tensors, modules, metadata: decodeMetadata(file.metadata), hash };
}

function storedTensor(name: string, value: AdapterTensorInput, rank: number, dtype: FloatDType): Tensor {
  if (!(value instanceof Float32Array)) {
    return value.dtype === dtype ? value : tensorFromF32(value.shape, tensorToF32(value), dtype);
  }
  const parsed = parsePeftLoraTensorName(name);
  if (!parsed) {
    throw new AdapterError(
      'ADAPTER_TENSOR_NAME',
      `tensor ${name} is not a PEFT LoRA tensor: ${explainForeignTensorName(name)}`,
    );
  }
  if (value.length === 0 || value.length % rank !== 0) {
    throw new AdapterError(
      'ADAPTER_SHAPE',
      `tensor ${name} has ${value.length} values, which is not a positive multiple of the rank ${rank}`,
    );
  }
  const features = value.length / rank;
  return tensorFromF32(parsed.factor === 'A' ? [rank, features] : [features, rank], value, dtype);
}

function assertFinite(name: string, tensor: Tensor, source: string): void {
  const values = tensorToF32(tensor);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      const [cols] = tensor.shape.slice(1);
      throw new AdapterError(
        'ADAPTER_NOT_FINITE',
        `${source}: ${name} holds ${values[i]} at [${Math.floor(i / cols)}, ${i % cols}]`,
      );
    }
  }
}

function encodeMetadata(metadata: AdapterMetadata, hash: string): Record<string, string> {
  const out: Record<string, string> = { format: 'pt', [METADATA_KEYS.tensorsHash]: hash };
  if (metadata.baseModelIdentity !== undefined)
    out[METADATA_KEYS.baseModelIdentity] = metadata.baseModelIdentity;
  if (metadata.feditVersion !== undefined) out[METADATA_KEYS.feditVersion] = metadata.feditVersion;
  const reserved = new Set<string>(Object.values(METADATA_KEYS));
  for (const [key, value] of Object.entries(metadata.extra ?? {})) {
    const full = METADATA_PREFIX + key;
    if (reserved.has(full)) {
      throw new AdapterError(
        'ADAPTER_CONFIG',
        `metadata key "${key}" is reserved by fedit; choose another name`,
      );
    }
    out[full] = value;
  }
  return out;
}

function decodeMetadata(raw: Readonly<Record<string, string>>): AdapterMetadata {
  const metadata: AdapterMetadata = {};
  const extra: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === METADATA_KEYS.baseModelIdentity) metadata.baseModelIdentity = value;
    else if (key === METADATA_KEYS.feditVersion) metadata.feditVersion = value;
    else if (key !== METADATA_KEYS.tensorsHash && key.startsWith(METADATA_PREFIX)) {
      extra[key.slice(METADATA_PREFIX.length)] = value;
    }
  }
  if (Object.keys(extra).length > 0) metadata.extra = extra;
  return metadata;
}

async function assertFolder(dir: string): Promise<void> {
  await requireFolder(dir, (why) =>
    why === 'missing'
      ? new AdapterError('ADAPTER_MISSING', `${dir}: no such adapter folder`)
      : new AdapterError(
          'ADAPTER_MISSING',
          `${dir}: not a folder; give the folder that holds ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE}`,
        ),
  );
}
