// The frozen base weights as the compiled graphs see them: one flat file of little-endian floats in
// the compute dtype, each tensor at a 4 KiB-aligned offset, plus a JSON index. The graphs reference
// it as ONNX external data, so ONNX Runtime reads (or maps) it directly and no weight is ever copied
// through JavaScript per step.

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { DType, Graph, Value } from '../graph/ir.ts';

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

/** Writes tensors (converted to `dtype`) into `dir`; the index is written last, so a crash leaves no valid store. */
export function writeWeightStore(
  dir: string,
  tensors: Iterable<NamedTensor>,
  dtype: WeightDType = 'float32',
): WeightStore {
  mkdirSync(dir, { recursive: true });
  const file = `weights.${dtype}.bin`;
  const tmp = join(dir, `${file}.tmp`);
  const fd = openSync(tmp, 'w');
  const entries = new Map<string, WeightEntry>();
  let offset = 0;
  try {
    for (const [name, shape, data] of tensors) {
      const typed =
        dtype === 'float32'
          ? data instanceof Float32Array
            ? data
            : Float32Array.from(data)
          : data instanceof Float64Array
            ? data
            : Float64Array.from(data);
      const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
      const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
      if (pad) writeFully(fd, new Uint8Array(pad));
      offset += pad;
      writeFully(fd, bytes);
      entries.set(name, { shape, offset, length: bytes.length });
      offset += bytes.length;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, file));
  const index = { dtype, file, tensors: Object.fromEntries(entries) };
  writeFileSync(join(dir, `${INDEX}.tmp`), JSON.stringify(index));
  renameSync(join(dir, `${INDEX}.tmp`), join(dir, INDEX));
  return { dir, file, dtype, entries };
}

export function openWeightStore(dir: string): WeightStore {
  const index = JSON.parse(readFileSync(join(dir, INDEX), 'utf8')) as {
    dtype: WeightDType;
    file: string;
    tensors: Record<string, WeightEntry>;
  };
  return { dir, file: index.file, dtype: index.dtype, entries: new Map(Object.entries(index.tensors)) };
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

  get dtype(): DType {
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
