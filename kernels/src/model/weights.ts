// The frozen base weights as the compiled graphs see them: one flat file of little-endian floats in
// the compute dtype, each tensor at a 4 KiB-aligned offset, plus a JSON index. The graphs reference
// it as ONNX external data, so ONNX Runtime reads (or maps) it directly and no weight is ever copied
// through JavaScript per step.

import { FeditError, writeFileAtomic } from '@fedit/shared';
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { ElementType, Graph, Value } from '../graph/ir.ts';

export type WeightDType = 'float32' | 'float64';

export interface WeightEntry {
  shape: number[];
  offset: number;
  length: number;
}

export interface WeightStore {
  dir: string;
  /** File name of the data file inside `dir` (relative, as ONNX external data requires). */
  file: string;
  dtype: WeightDType;
  entries: Map<string, WeightEntry>;
}

const ALIGN = 4096;
const INDEX = 'weights.json';

/**
 * Bytes per read or write call. Node refuses a single readSync/writeSync of 2 GiB or more, and the
 * embedding table of a large-vocabulary model is over that (Llama 3 8B's is 2.1 GB in float32).
 */
export const IO_CHUNK_BYTES = 1 << 30;

/**
 * Fills `bytes` from `fd` at `position`, one bounded read at a time (reads may also return less
 * than asked). Returns how many bytes were read: less than bytes.length only at the end of the file.
 */
export function readFully(fd: number, bytes: Uint8Array, position: number, chunk = IO_CHUNK_BYTES): number {
  let done = 0;
  while (done < bytes.length) {
    const n = readSync(fd, bytes, done, Math.min(chunk, bytes.length - done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Writes all of `bytes` at the file's current position, one bounded write at a time. */
export function writeFully(fd: number, bytes: Uint8Array, chunk = IO_CHUNK_BYTES): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, Math.min(chunk, bytes.length - done));
}

export type NamedTensor = [name: string, shape: number[], data: Float32Array | Float64Array];

/** A weight store that is missing, incomplete or damaged: `file` is the part at fault. */
export class WeightStoreError extends FeditError {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super('WEIGHT_STORE', `${file}: ${reason}`);
  }
}

const BYTES_PER_ELEMENT: Record<WeightDType, number> = { float32: 4, float64: 8 };

/**
 * Writes tensors (converted to `dtype`) into `dir`: the data file, then the index, each through a
 * uniquely named temporary file that is fsynced and renamed into place. A crash at any moment leaves
 * no index or one whose data file is complete; two processes writing the same store at once each
 * rename a complete file of the same bytes, so neither can tear the other's.
 */
export async function writeWeightStore(
  dir: string,
  tensors: Iterable<NamedTensor>,
  dtype: WeightDType = 'float32',
): Promise<WeightStore> {
  mkdirSync(dir, { recursive: true });
  const file = `weights.${dtype}.bin`;
  const entries = new Map<string, WeightEntry>();
  // A generator, so one tensor at a time is in memory however large the model.
  function* chunks(): Generator<Uint8Array> {
    let offset = 0;
    for (const [name, shape, data] of tensors) {
      const typed =
        dtype === 'float32'
          ? data instanceof Float32Array
            ? data
            : Float32Array.from(data)
          : data instanceof Float64Array
            ? data
            : Float64Array.from(data);
      const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
      if (pad) yield new Uint8Array(pad);
      offset += pad;
      yield new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
      entries.set(name, { shape, offset, length: typed.byteLength });
      offset += typed.byteLength;
    }
  }
  await writeFileAtomic(join(dir, file), chunks());
  const index = { dtype, file, tensors: Object.fromEntries(entries) };
  await writeFileAtomic(join(dir, INDEX), JSON.stringify(index));
  return { dir, file, dtype, entries };
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Opens the store in `dir`, checking that its index is whole and agrees with its data file (every
 * tensor's length matches its shape and lies inside the file, which ends where the last tensor
 * does); throws WeightStoreError naming the file at fault otherwise.
 */
export function openWeightStore(dir: string): WeightStore {
  const indexPath = join(dir, INDEX);
  let text: string;
  try {
    text = readFileSync(indexPath, 'utf8');
  } catch (err) {
    throw new WeightStoreError(indexPath, `cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  if (text.trim() === '') throw new WeightStoreError(indexPath, 'is empty');
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (err) {
    throw new WeightStoreError(indexPath, `is not valid JSON (${(err as Error).message})`);
  }
  const { dtype, file, tensors } = (index ?? {}) as { dtype?: unknown; file?: unknown; tensors?: unknown };
  if (dtype !== 'float32' && dtype !== 'float64')
    throw new WeightStoreError(indexPath, `"dtype" is ${JSON.stringify(dtype)}, not "float32" or "float64"`);
  // exactly the name the writer uses: the index must never point outside its folder
  if (file !== `weights.${dtype}.bin`)
    throw new WeightStoreError(indexPath, `"file" is ${JSON.stringify(file)}, not "weights.${dtype}.bin"`);
  if (!tensors || typeof tensors !== 'object' || Array.isArray(tensors))
    throw new WeightStoreError(indexPath, 'has no "tensors" object');
  const entries = new Map<string, WeightEntry>();
  let end = 0;
  for (const [name, raw] of Object.entries(tensors as Record<string, unknown>)) {
    const { shape, offset, length } = (raw ?? {}) as Partial<Record<keyof WeightEntry, unknown>>;
    if (!Array.isArray(shape) || !shape.every(isCount) || !isCount(offset) || !isCount(length))
      throw new WeightStoreError(indexPath, `tensor ${name} has no valid shape, offset and length`);
    const elements = shape.reduce((a: number, b: number) => a * b, 1);
    if (length !== elements * BYTES_PER_ELEMENT[dtype] || offset % ALIGN !== 0)
      throw new WeightStoreError(
        indexPath,
        `tensor ${name}'s offset or length does not fit its shape [${shape}]`,
      );
    entries.set(name, { shape, offset, length });
    end = Math.max(end, offset + length);
  }
  const dataPath = join(dir, file);
  let size: number;
  try {
    size = statSync(dataPath).size;
  } catch (err) {
    throw new WeightStoreError(dataPath, `cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  if (size !== end)
    throw new WeightStoreError(dataPath, `is ${size} bytes; ${INDEX} says the tensors end at byte ${end}`);
  return { dir, file, dtype, entries };
}

/**
 * How long a temporary file may go unmodified before it counts as abandoned. A live writer touches
 * its file with every chunk, so only a writer that was killed (or a machine that lost power) leaves
 * one this old; younger ones may belong to another process converting the same model right now.
 */
export const STALE_TEMPORARY_MS = 15 * 60 * 1000;

/** Deletes the abandoned `*.tmp` files in `dir` (see STALE_TEMPORARY_MS); returns their names. */
export function removeStaleTemporaryFiles(dir: string, now = Date.now()): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.endsWith('.tmp')) continue;
    try {
      if (now - statSync(join(dir, name)).mtimeMs < STALE_TEMPORARY_MS) continue;
      rmSync(join(dir, name), { force: true });
      removed.push(name);
    } catch {
      // gone already (another process cleaned it up, or renamed it into place)
    }
  }
  return removed;
}

/** Reads one tensor back (for merging adapters and for tests), as float32. */
export function readWeight(store: WeightStore, name: string): Float32Array {
  const e = store.entries.get(name);
  if (!e) throw new Error(`weight store ${store.dir} has no tensor ${name}`);
  const buf = new Uint8Array(e.length);
  const path = join(store.dir, store.file);
  const fd = openSync(path, 'r');
  try {
    if (readFully(fd, buf, e.offset) !== e.length)
      throw new Error(`${path}: truncated while reading ${name}`);
  } finally {
    closeSync(fd);
  }
  return store.dtype === 'float32'
    ? new Float32Array(buf.buffer)
    : Float32Array.from(new Float64Array(buf.buffer));
}

/**
 * Resolves base-weight names to graph values: frozen weights become external-data initializers;
 * names listed in `trainable` become graph inputs instead (full fine-tuning).
 */
export class WeightBinder {
  private readonly bound = new Map<string, Value>();
  readonly trainableInputs = new Map<string, Value>();

  constructor(
    private readonly graph: Graph,
    private readonly store: WeightStore,
    private readonly trainable: ReadonlySet<string> = new Set(),
  ) {}

  get dtype(): ElementType {
    return this.store.dtype;
  }

  has(name: string): boolean {
    return this.store.entries.has(name);
  }

  get(name: string): Value {
    const hit = this.bound.get(name);
    if (hit) return hit;
    const e = this.store.entries.get(name);
    if (!e) throw new Error(`the base model has no tensor ${name}`);
    let v: Value;
    if (this.trainable.has(name)) {
      v = this.graph.input(name, this.store.dtype, e.shape);
      this.trainableInputs.set(name, v);
    } else {
      v = this.graph.initializer(name, this.store.dtype, e.shape, {
        kind: 'external',
        file: this.store.file,
        offset: e.offset,
        length: e.length,
      });
    }
    this.bound.set(name, v);
    return v;
  }
}
