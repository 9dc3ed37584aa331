// Durable, all-or-nothing file writes: the bytes go to a temporary file in the same directory, are
// fsynced, then renamed over the target, and the directory is synced; a crash at any moment leaves
// either the old file or the complete new one.

import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

// Kernel writes are capped near 2 GiB per call and may be partial, so large buffers go in pieces.
const WRITE_CHUNK_BYTES = 1 << 30;

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.byteLength) {
    const length = Math.min(WRITE_CHUNK_BYTES, bytes.byteLength - written);
    const { bytesWritten } = await handle.write(bytes, written, length);
    written += bytesWritten;
  }
}

/** Makes a rename durable. Windows cannot open directories, and there rename is durable enough. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(directory, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    // some file systems refuse fsync on directories; the rename has happened either way
  } finally {
    await handle.close();
  }
}

/** Owner-only modes for what holds keys or participants' updates (folders, files). */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Writes `content` (a string as UTF-8, or byte chunks in order) to `path` atomically and durably.
 * `mode` is the new file's permissions from its creation (less the umask), so a private file
 * (0o600) is never readable by others, not even before a chmod.
 */
export async function writeFileAtomic(
  path: string,
  content: string | Uint8Array | Iterable<Uint8Array>,
  options: { mode?: number } = {},
): Promise<void> {
  const chunks: Iterable<Uint8Array> =
    typeof content === 'string'
      ? [new TextEncoder().encode(content)]
      : content instanceof Uint8Array
        ? [content]
        : content;
  const directory = dirname(path);
  const temporary = join(directory, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', options.mode ?? 0o666);
  try {
    try {
      for (const chunk of chunks) await writeAll(handle, chunk);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(directory);
}
