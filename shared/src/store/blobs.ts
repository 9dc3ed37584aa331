// Content-addressed store of tensor sets (global adapters and participants' updates). A set's name
// is its content hash (hashTensors: the identity of every adapter in fedit), so a stored set can
// never be silently replaced, the same tensors are stored once, and anyone holding a copy of the
// folder can check every name. Sets are stored as canonical safetensors files, at
// <dir>/<first 2 hex digits>/<64 hex digits>.safetensors. It lives in shared because an auditor
// reads it too (audit/), with nothing of the coordinator installed.

import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { FeditError } from '../errors.ts';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, writeFileAtomic } from '../fs/atomic.ts';
import { hashTensors } from '../tensors/hash.ts';
import { parseSafetensors, serializeSafetensors } from '../tensors/safetensors.ts';
import { tensorToF32, type Tensor } from '../tensors/tensor.ts';

const HASH = /^sha256:[0-9a-f]{64}$/;
const SUBDIR = /^[0-9a-f]{2}$/;
const FILE = /^[0-9a-f]{64}\.safetensors$/;

export class BlobStore {
  // Every participant's update is stored here: owner-only from creation (folders 0700, files 0600).
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  }

  private pathOf(hash: string): string {
    if (!HASH.test(hash)) throw new FeditError('BLOB_HASH', `not a tensor-set name: ${JSON.stringify(hash)}`);
    const hex = hash.slice(7);
    return join(this.dir, hex.slice(0, 2), `${hex}.safetensors`);
  }

  has(hash: string): boolean {
    return existsSync(this.pathOf(hash));
  }

  /** Stores the tensors (atomically, fsynced) and returns their content hash. */
  async put(tensors: ReadonlyMap<string, Tensor>): Promise<string> {
    const hash = hashTensors(tensors);
    const path = this.pathOf(hash);
    if (!existsSync(path)) {
      mkdirSync(join(this.dir, hash.slice(7, 9)), { recursive: true, mode: PRIVATE_DIR_MODE });
      await writeFileAtomic(path, serializeSafetensors(tensors), { mode: PRIVATE_FILE_MODE });
    }
    return hash;
  }

  /** The canonical file bytes of a stored set (what is sent to participants), or undefined. */
  bytes(hash: string): Uint8Array | undefined {
    const path = this.pathOf(hash);
    return existsSync(path) ? new Uint8Array(readFileSync(path)) : undefined;
  }

  /** The size in bytes of a stored set's file, or undefined when absent. */
  size(hash: string): number | undefined {
    try {
      return statSync(this.pathOf(hash)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Up to `length` bytes of a stored set's file from `offset` (fewer at its end), or undefined when
   * absent. Serving a download chunk by chunk reads only that chunk, so the work a request costs is
   * bounded by the chunk size, not the adapter's.
   */
  readRange(hash: string, offset: number, length: number): Uint8Array | undefined {
    let fd: number;
    try {
      fd = openSync(this.pathOf(hash), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const out = new Uint8Array(Math.max(0, Math.min(length, fstatSync(fd).size - offset)));
      let read = 0;
      while (read < out.length) {
        const n = readSync(fd, out, read, out.length - read, offset + read);
        if (n === 0) break; // cannot happen for a blob (never rewritten), but never loop forever
        read += n;
      }
      return out.subarray(0, read);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The names of every stored set: complete files only (a write in progress is a hidden temporary
   * file until it is renamed into place, writeFileAtomic), sorted.
   */
  list(): string[] {
    const hashes: string[] = [];
    for (const sub of readdirSync(this.dir)
      .filter((d) => SUBDIR.test(d))
      .sort()) {
      for (const file of readdirSync(join(this.dir, sub)).sort()) {
        if (FILE.test(file) && file.startsWith(sub)) hashes.push(`sha256:${file.slice(0, 64)}`);
      }
    }
    return hashes;
  }

  /** Removes a stored set (nothing if absent). Only for sets nothing refers to (orphans.ts). */
  remove(hash: string): void {
    rmSync(this.pathOf(hash), { force: true });
  }

  /** The tensors named `hash`, checked against their name; undefined when absent. */
  get(hash: string): Map<string, Tensor> | undefined {
    const bytes = this.bytes(hash);
    if (!bytes) return undefined;
    const { tensors } = parseSafetensors(bytes, this.pathOf(hash));
    if (hashTensors(tensors) !== hash) {
      throw new FeditError(
        'BLOB_CORRUPT',
        `tensor set ${hash} in ${this.dir} does not match its name: the file was altered or damaged`,
      );
    }
    return tensors;
  }

  /** Like get(), as float32 arrays. */
  getF32(hash: string): Map<string, Float32Array> | undefined {
    const t = this.get(hash);
    return t && new Map([...t].map(([n, v]) => [n, tensorToF32(v)]));
  }
}
