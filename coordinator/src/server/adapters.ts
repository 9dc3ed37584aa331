// Serving global adapters ('adapter:get'): the initial adapter and each round's result, chunk by
// chunk, and in a SCAFFOLD federation the server state holding the control variate c; nothing
// else. Counted updates live in the same blob store, decrypted, and are one
// participant's training signal: asking for one gets the same answer as a hash that is not stored
// at all, so a participant cannot even learn that another's update exists.

import type { AdapterChunk, RoundRecord } from '@fedit/shared';
import type { BlobStore } from '@fedit/shared';
import { timed } from './profile.ts';
import { RefusedError } from './refusal.ts';

/** Bytes of the adapter file per 'adapter:get' chunk. */
export const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;

export class GlobalAdapters {
  readonly #servable = new Set<string>();

  /** Every global adapter the log names: the initial one (config records) and each round's result. */
  constructor(
    private readonly blobs: BlobStore,
    records: readonly RoundRecord[],
  ) {
    for (const r of records) {
      if (r.kind === 'config' && r.body.globalAdapter !== undefined) this.#servable.add(r.body.globalAdapter);
      if (r.kind === 'round-closed') this.#servable.add(r.body.globalAdapterOut);
      // A SCAFFOLD federation's participants fetch the control variate c from the server state.
      if (r.kind === 'round-closed' && r.body.rule.config.scaffold === true && r.body.serverStateOut)
        this.#servable.add(r.body.serverStateOut);
    }
  }

  add(hash: string): void {
    this.#servable.add(hash);
  }

  /**
   * Chunk `index` of adapter `hash`. Only that chunk is read (a ranged read), so however often a
   * peer asks, each request costs at most one chunk of disk reading and memory.
   */
  chunk(hash: string, index: number): AdapterChunk {
    const size = this.#servable.has(hash) ? this.blobs.size(hash) : undefined;
    if (size === undefined)
      throw new RefusedError('ADAPTER_UNKNOWN', `no global adapter ${hash} here`, 'payload.hash');
    const total = Math.max(1, Math.ceil(size / DOWNLOAD_CHUNK_BYTES));
    if (index >= total)
      throw new RefusedError(
        'PROTOCOL_RANGE',
        `payload.index is ${index}, but the adapter has ${total} chunks`,
        'payload.index',
      );
    // Blobs are never removed, so a stored adapter's range is there to read.
    const data = timed('adapter.serve', () =>
      this.blobs.readRange(hash, index * DOWNLOAD_CHUNK_BYTES, DOWNLOAD_CHUNK_BYTES),
    )!;
    return { data, total };
  }
}
