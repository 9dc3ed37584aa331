// Hugging Face checkpoint directories: config.json + model.safetensors (or shards listed in
// model.safetensors.index.json). Loading converts the weights once into the weight store the graphs
// read (float32, or float64 for gradient checks), cached under a key of the source files, and
// computes the model identity: a hash of the config and of every weight's content, which a
// federation pins so everyone trains the same base.

import { FeditError, writeFileAtomic } from '@fedit/shared';
import { createHash } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import {
  tensorToF32,
  readSafetensorsHeader,
  writeSafetensorsFile,
  tensorFromF32,
  type SafetensorsTensorInfo,
  type Tensor,
} from '@fedit/shared';
import { missingModelFile } from './model-folder.ts';
import { hasOProjBias, parseLlamaConfig, toHfConfig, type LlamaConfig } from './config.ts';
import {
  openWeightStore,
  readFully,
  removeStaleTemporaryFiles,
  WeightStoreError,
  writeWeightStore,
  type NamedTensor,
  type WeightDType,
  type WeightStore,
} from './weights.ts';

export class CheckpointError extends FeditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CHECKPOINT', message, options);
  }
}

export interface LoadedModel {
  dir: string;
  config: LlamaConfig;
  /** sha256 over the config's architecture fields and every weight's bytes. */
  identity: string;
  store: WeightStore;
}

interface SourceTensor {
  file: string;
  info: SafetensorsTensorInfo;
  dataStart: number;
}

/** The tensors a Llama-family model of `cfg` must have, with shapes. */
export function expectedTensorShapes(cfg: LlamaConfig): Map<string, number[]> {
  const d = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const f = cfg.intermediateSize;
  const m = new Map<string, number[]>([['model.embed_tokens.weight', [cfg.vocabSize, d]]]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    m.set(`${p}.input_layernorm.weight`, [d]);
    m.set(`${p}.post_attention_layernorm.weight`, [d]);
    m.set(`${p}.self_attn.q_proj.weight`, [q, d]);
    m.set(`${p}.self_attn.k_proj.weight`, [kv, d]);
    m.set(`${p}.self_attn.v_proj.weight`, [kv, d]);
    m.set(`${p}.self_attn.o_proj.weight`, [d, q]);
    if (cfg.qkvBias) {
      m.set(`${p}.self_attn.q_proj.bias`, [q]);
      m.set(`${p}.self_attn.k_proj.bias`, [kv]);
      m.set(`${p}.self_attn.v_proj.bias`, [kv]);
    }
    // the decoder adds any bias the weights have, so o_proj's needs no more than loading
    if (hasOProjBias(cfg)) m.set(`${p}.self_attn.o_proj.bias`, [d]);
    m.set(`${p}.mlp.gate_proj.weight`, [f, d]);
    m.set(`${p}.mlp.up_proj.weight`, [f, d]);
    m.set(`${p}.mlp.down_proj.weight`, [d, f]);
  }
  m.set('model.norm.weight', [d]);
  if (!cfg.tieWordEmbeddings) m.set('lm_head.weight', [cfg.vocabSize, d]);
  return m;
}

async function sourceTensors(dir: string): Promise<SourceTensor[]> {
  const single = join(dir, 'model.safetensors');
  const indexPath = join(dir, 'model.safetensors.index.json');
  let files: string[];
  if (existsSync(single)) files = [single];
  else if (existsSync(indexPath)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (err) {
      throw new CheckpointError(`${indexPath}: not valid JSON (${(err as Error).message})`);
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') {
      throw new CheckpointError(`${indexPath}: has no "weight_map" object`);
    }
    files = [...new Set(Object.values(index.weight_map))].sort().map((f) => join(dir, f));
    for (const f of files)
      if (!existsSync(f)) throw new CheckpointError(`${indexPath} lists ${f}, which is missing`);
  } else {
    throw new CheckpointError(
      `${dir}: no model.safetensors or model.safetensors.index.json (fedit reads safetensors checkpoints)`,
    );
  }
  const out: SourceTensor[] = [];
  for (const file of files) {
    const header = await readSafetensorsHeader(file);
    for (const info of header.tensors.values()) out.push({ file, info, dataStart: header.dataStart });
  }
  return out;
}

const WEIGHT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

function toF32(info: SafetensorsTensorInfo, bytes: Uint8Array, source: string): Float32Array {
  if (!WEIGHT_DTYPES.has(info.dtype)) {
    throw new CheckpointError(
      `${source}: tensor ${info.name} has dtype ${info.dtype}; weights must be F32, F16 or BF16`,
    );
  }
  return tensorToF32({ dtype: info.dtype, shape: info.shape, data: bytes });
}

function canWrite(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where converted weights go unless told: `$FEDIT_CACHE_DIR`, else `<model>/.fedit-cache` when the
 * model folder is writable (the cache then travels and is deleted with the model), else the user's
 * cache folder (a model folder shared read-only, or on a read-only disk).
 */
export function defaultWeightCacheDir(modelDir: string, writable = canWrite): string {
  if (process.env.FEDIT_CACHE_DIR) return process.env.FEDIT_CACHE_DIR;
  if (writable(modelDir)) return join(modelDir, '.fedit-cache');
  {
    const base =
      process.platform === 'win32'
        ? (process.env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'))
        : process.platform === 'darwin'
          ? join(homedir(), 'Library', 'Caches')
          : (process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'));
    return join(base, 'fedit', 'models');
  }
}

/** Architecture fields that define the model, in a fixed order, for the identity hash. */
function configIdentity(cfg: LlamaConfig): string {
  // Length limits (max positions, Mistral's sliding window) bound which sequences fedit runs but do
  // not change the model on them; leaving them out keeps identities as they were before fedit read them.
  const {
    bosTokenId: _b,
    eosTokenId: _e,
    padTokenId: _p,
    maxPositionEmbeddings: _m,
    slidingWindow: _w,
    ...arch
  } = cfg;
  return JSON.stringify(Object.fromEntries(Object.entries(arch).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/** Written last into a cache entry: its presence (with a well-formed identity) commits the entry. */
const IDENTITY_FILE = 'identity.txt';
const IDENTITY_PATTERN = /^sha256:[0-9a-f]{64}$/;

type CacheEntry = { identity: string; store: WeightStore } | { problem?: string };

/**
 * Reads the conversion cached in `dir`, trusting nothing: the identity must be well formed, the
 * index whole and in agreement with the data file, and the tensors the ones `expected` names. An
 * entry with none of its files is absent; one with some but not all of this is `problem`.
 */
function readCacheEntry(dir: string, dtype: WeightDType, expected: Map<string, number[]>): CacheEntry {
  const identityPath = join(dir, IDENTITY_FILE);
  if (![IDENTITY_FILE, 'weights.json', `weights.${dtype}.bin`].some((f) => existsSync(join(dir, f))))
    return {};
  let identity: string;
  try {
    identity = readFileSync(identityPath, 'utf8').trim();
  } catch {
    return { problem: `${IDENTITY_FILE} is missing` };
  }
  if (!IDENTITY_PATTERN.test(identity))
    return {
      problem: identity === '' ? `${IDENTITY_FILE} is empty` : `${IDENTITY_FILE} holds no model identity`,
    };
  let store: WeightStore;
  try {
    store = openWeightStore(dir);
  } catch (err) {
    if (err instanceof WeightStoreError) return { problem: `${basename(err.file)} ${err.reason}` };
    throw err;
  }
  if (store.dtype !== dtype) return { problem: `weights.json holds ${store.dtype} weights, not ${dtype}` };
  if (store.entries.size !== expected.size)
    return { problem: `weights.json lists ${store.entries.size} tensors, not ${expected.size}` };
  for (const [name, shape] of expected) {
    const e = store.entries.get(name);
    if (!e || e.shape.join(',') !== shape.join(','))
      return { problem: `weights.json has no tensor ${name} of shape [${shape}]` };
  }
  return { identity, store };
}

/**
 * Opens a checkpoint directory; converts and caches its weights under `cacheDir` (default:
 * <dir>/.fedit-cache) unless a complete conversion of the same files is already there. A cache
 * entry left incomplete or damaged (a crash or power loss while converting) is converted again,
 * with a warning; it is never trusted and never fails the load.
 */
export async function loadCheckpoint(
  dir: string,
  options: { cacheDir?: string; dtype?: WeightDType; onWarning?: (message: string) => void } = {},
): Promise<LoadedModel> {
  const dtype = options.dtype ?? 'float32';
  const warn = options.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new CheckpointError(missingModelFile(dir, 'config.json'));
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new CheckpointError(`${configPath}: not valid JSON (${(err as Error).message})`);
  }
  const config = parseLlamaConfig(raw, configPath);
  const sources = await sourceTensors(dir);
  const byName = new Map(sources.map((s) => [s.info.name, s]));
  const expected = expectedTensorShapes(config);
  for (const [name, shape] of expected) {
    const s = byName.get(name);
    if (!s)
      throw new CheckpointError(
        `${dir}: the checkpoint has no tensor ${name}, which a ${config.modelType} model of this config needs`,
      );
    if (s.info.shape.join(',') !== shape.join(',')) {
      throw new CheckpointError(
        `${s.file}: tensor ${name} has shape [${s.info.shape}], config.json implies [${shape}]`,
      );
    }
  }

  // Cache key: what the files are (where they really are, sizes, modification times) and how they
  // are converted. The real path, so `--model ./m`, `--model /abs/m` and a symlinked folder (or the
  // Hugging Face hub cache's symlinked blobs) all find the same conversion.
  const key = createHash('sha256');
  key.update(`fedit-weights-v1|${dtype}|${configIdentity(config)}`);
  for (const f of [...new Set(sources.map((s) => s.file))]) {
    const st = statSync(f);
    key.update(`|${realpathSync(f)}|${st.size}|${st.mtimeMs}`);
  }
  const cacheDir = join(options.cacheDir ?? defaultWeightCacheDir(dir), key.digest('hex').slice(0, 16));
  removeStaleTemporaryFiles(cacheDir);
  const cached = readCacheEntry(cacheDir, dtype, expected);
  if ('identity' in cached) return { dir, config, identity: cached.identity, store: cached.store };
  if (cached.problem)
    warn(`the converted weights in ${cacheDir} are incomplete (${cached.problem}); converting ${dir} again`);
  // Uncommit first, so that a crash during the conversion leaves an entry that reads as incomplete.
  rmSync(join(cacheDir, IDENTITY_FILE), { force: true });

  mkdirSync(cacheDir, { recursive: true });
  const identity = createHash('sha256');
  identity.update(`fedit-model-v1\n${configIdentity(config)}\n`);
  // Streamed: one tensor in memory at a time, so a multi-GB checkpoint converts in little RAM.
  function* converted(): Generator<NamedTensor> {
    for (const [name, shape] of expected) {
      const s = byName.get(name)!;
      const [begin, end] = s.info.dataOffsets;
      const bytes = new Uint8Array(end - begin);
      const fd = openSync(s.file, 'r');
      try {
        if (readFully(fd, bytes, s.dataStart + begin) !== bytes.length) {
          throw new CheckpointError(`${s.file}: truncated while reading ${name}`);
        }
      } finally {
        closeSync(fd);
      }
      const data = toF32(s.info, bytes, s.file);
      // identity over the converted float32 values, so the same weights stored in differently
      // laid out or sharded files hash alike
      identity.update(`${name}|${shape.join(',')}|`);
      identity.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      yield [name, shape, data];
    }
  }
  let store: WeightStore;
  let id: string;
  try {
    store = await writeWeightStore(cacheDir, converted(), dtype);
    id = `sha256:${identity.digest('hex')}`;
    // the identity last: it commits the entry, and only once everything it vouches for is on disk
    await writeFileAtomic(join(cacheDir, IDENTITY_FILE), id + '\n');
  } catch (err) {
    // Another process converting the same files may have committed the entry meanwhile (and on
    // Windows, may hold the data file open so that ours cannot replace it): its conversion is ours.
    const other = readCacheEntry(cacheDir, dtype, expected);
    if ('identity' in other) return { dir, config, identity: other.identity, store: other.store };
    throw err;
  }
  return { dir, config, identity: id, store };
}

/** Writes a Hugging Face checkpoint directory (config.json + model.safetensors). */
export async function writeHfCheckpoint(
  dir: string,
  config: LlamaConfig,
  tensors: Iterable<NamedTensor>,
  dtype: 'F32' | 'F16' | 'BF16' = 'F32',
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const out = new Map<string, Tensor>();
  for (const [name, shape, data] of tensors)
    out.set(name, tensorFromF32(shape, Float32Array.from(data), dtype));
  await writeSafetensorsFile(join(dir, 'model.safetensors'), out, { format: 'pt' });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig(config), null, 2) + '\n');
}
