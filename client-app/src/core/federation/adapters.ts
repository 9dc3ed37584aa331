// Global adapters: fetched from the coordinator by content hash, chunk by chunk ('adapter:get'),
// checked (the bytes parse as safetensors and hashTensors of the tensors is the hash asked for),
// and cached in the fedit home folder by hash, so an adapter is never fetched twice.
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { hashTensors, parseSafetensors, type ContentHash, type Tensor } from '@fedit/shared';
import { FederationError } from './errors.ts';
import { adapterCachePath, ensurePrivateDir, writePrivateFile } from './store.ts';

/** Adapters kept in the cache; older ones are removed after each download. */
export const ADAPTER_CACHE_KEEP = 4;

/** Parses adapter bytes and checks they are the adapter `hash` names. */
export function checkAdapterBytes(bytes: Uint8Array, hash: string, source: string): Map<string, Tensor> {
  let tensors: Map<string, Tensor>;
  try {
    tensors = parseSafetensors(bytes, source).tensors;
  } catch (cause) {
    throw new FederationError(
      'FEDERATION_ADAPTER',
      `${source} is not a valid safetensors file: ${(cause as Error).message}`,
      { cause },
    );
  }
  const actual = hashTensors(tensors);
  if (actual !== hash) {
    throw new FederationError(
      'FEDERATION_ADAPTER',
      `${source} holds the adapter ${actual}, not ${hash} as asked; it was damaged or swapped`,
    );
  }
  return tensors;
}

/** The cached adapter `hash`, or undefined (a damaged cache file is removed). */
export async function readCachedAdapter(
  home: string,
  hash: string,
): Promise<Map<string, Tensor> | undefined> {
  const path = adapterCachePath(home, hash);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return checkAdapterBytes(bytes, hash, path);
  } catch {
    await rm(path, { force: true });
    return undefined;
  }
}

/** Stores checked adapter bytes in the cache and removes all but the newest ADAPTER_CACHE_KEEP. */
export async function cacheAdapter(home: string, hash: string, bytes: Uint8Array): Promise<void> {
  const path = adapterCachePath(home, hash);
  await ensurePrivateDir(home);
  await ensurePrivateDir(dirname(path));
  await writePrivateFile(path, bytes, { mode: 0o600 });
  const dir = dirname(path);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors') && !f.startsWith('.'));
  if (files.length <= ADAPTER_CACHE_KEEP) return;
  const dated = await Promise.all(
    files.map(async (f) => ({ f, mtime: (await stat(join(dir, f)).catch(() => undefined))?.mtimeMs ?? 0 })),
  );
  dated.sort((a, b) => b.mtime - a.mtime);
  for (const { f } of dated.slice(ADAPTER_CACHE_KEEP)) {
    if (join(dir, f) !== path) await rm(join(dir, f), { force: true });
  }
}

/** Fetches one chunk; the caller supplies the request (and retries across reconnections). */
export type AdapterChunkFetcher = (
  hash: ContentHash,
  index: number,
) => Promise<{ data: Uint8Array; total: number }>;

/**
 * Downloads adapter `hash` chunk by chunk with `fetchChunk`, checks it, and returns its bytes
 * and tensors. `onChunk` reports progress.
 */
export async function downloadAdapter(
  hash: ContentHash,
  fetchChunk: AdapterChunkFetcher,
  onChunk?: (done: number, total: number) => void,
): Promise<{ bytes: Uint8Array; tensors: Map<string, Tensor> }> {
  const chunks: Uint8Array[] = [];
  let total = 1;
  for (let index = 0; index < total; index++) {
    const chunk = await fetchChunk(hash, index);
    if (index === 0) total = chunk.total;
    else if (chunk.total !== total) {
      throw new FederationError(
        'FEDERATION_PROTOCOL',
        `the coordinator said adapter ${hash} has ${total} chunks, then ${chunk.total}`,
      );
    }
    chunks.push(chunk.data);
    onChunk?.(index + 1, total);
  }
  const bytes = new Uint8Array(Buffer.concat(chunks));
  return { bytes, tensors: checkAdapterBytes(bytes, hash, `adapter ${hash} from the coordinator`) };
}
