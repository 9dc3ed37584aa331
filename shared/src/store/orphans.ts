// Blobs nothing refers to. A participant's update is stored when it is committed, before the
// round's record names it; when the round is aborted (too few updates), or the update arrives
// after the quorum, no record ever names it, and every participant's update would stay on disk for
// good. orphanBlobs finds those, to be removed.
//
// What counts as referenced is deliberately broad: every content hash ("sha256:" + 64 hex digits)
// anywhere in any record of the log, inside longer strings too (a config record's settings text), plus the hashes the caller keeps (uploads counted in the open
// round). Hashes of other things (envelopes, payloads, configs) are kept needlessly, never a blob
// the log needs: a record kind added later that names a blob is covered without a change here.

import type { RoundRecord } from '../rounds/record.ts';
import type { BlobStore } from './blobs.ts';

const ANY_CONTENT_HASH = /sha256:[0-9a-f]{64}/g;

/** Every content hash anywhere in the records' bodies. */
export function contentHashesIn(records: Iterable<RoundRecord>): Set<string> {
  const found = new Set<string>();
  const walk = (value: unknown): void => {
    if (typeof value === 'string') {
      for (const match of value.matchAll(ANY_CONTENT_HASH)) found.add(match[0]);
    } else if (Array.isArray(value)) {
      for (const item of value) walk(item);
    } else if (typeof value === 'object' && value !== null) {
      for (const item of Object.values(value)) walk(item);
    }
  };
  for (const record of records) walk(record.body);
  return found;
}

/** The stored sets neither the records nor `keep` name, sorted. */
export function orphanBlobs(
  store: BlobStore,
  records: Iterable<RoundRecord>,
  keep: Iterable<string> = [],
): string[] {
  const referenced = contentHashesIn(records);
  for (const hash of keep) referenced.add(hash);
  return store.list().filter((hash) => !referenced.has(hash));
}
