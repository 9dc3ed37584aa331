import { open, readFile, type FileHandle } from 'node:fs/promises';
import {
  parseSafetensors,
  layoutSafetensors,
  parseSafetensorsHeader,
  type ParsedSafetensors,
} from './safetensors.ts';
import { SafetensorsError } from './safetensors-error.ts';
import {
  decodeHeader,
  LENGTH_PREFIX_BYTES,
  readHeaderLength,
  type SafetensorsHeader,
} from './safetensors-header.ts';
import type { TensorCollection } from './tensor-entries.ts';
import { writeFileAtomic } from '../fs/atomic.ts';

/**
 * The header of a safetensors file, fully validated against the file's size. Given a path, reads
 * only the first 8 + N bytes, so inspecting a multi-GB checkpoint costs a few kilobytes of I/O.
 */
export async function readSafetensorsHeader(file: string | Uint8Array): Promise<SafetensorsHeader> {
  if (typeof file !== 'string') return parseSafetensorsHeader(file);
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const prefix = await readExactly(handle, 0, Math.min(size, LENGTH_PREFIX_BYTES), file);
    const headerLength = readHeaderLength(prefix, size, file);
    const headerBytes = await readExactly(handle, LENGTH_PREFIX_BYTES, headerLength, file);
    return decodeHeader(headerBytes, size - LENGTH_PREFIX_BYTES - headerLength, file);
  } finally {
    await handle.close();
  }
}

/**
 * Reads and parses a whole safetensors file; errors name `path`. Node caps a single read at
 * 2 GiB, so larger checkpoints must go through readSafetensorsHeader and ranged reads.
 */
export async function readSafetensorsFile(path: string): Promise<ParsedSafetensors> {
  const buffer = await readFile(path);
  // A plain Uint8Array view, so tensor data behave like those parsed from any other bytes
  // (Buffer overrides slice() to return a view instead of a copy).
  return parseSafetensors(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), path);
}

/**
 * Writes a safetensors file atomically: the bytes go to a temporary file in the same directory,
 * are fsynced, then renamed over `path`, so a crash leaves either the old file or the complete new
 * one, never a torn checkpoint that a later run would half-load.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: TensorCollection,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  // Laid out before anything touches the disk, so invalid tensors leave no temporary file behind.
  const { head, chunks } = layoutSafetensors(tensors, metadata);
  await writeFileAtomic(path, [head, ...chunks]);
}

async function readExactly(
  handle: FileHandle,
  position: number,
  length: number,
  path: string,
): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) {
      // The length came from fstat, so only a file shrinking while we read it gets here.
      throw new SafetensorsError(
        'SAFETENSORS_TRUNCATED',
        `${path}: file ended at byte ${position + filled} while its header was being read; was it being rewritten?`,
      );
    }
    filled += bytesRead;
  }
  return buffer;
}
