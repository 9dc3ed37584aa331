// Blobs no record names (store/orphans.ts) and the blob store's listing.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobStore, contentHashesIn, orphanBlobs, tensorFromF32, type RoundRecord } from '@fedit/shared';

const set = (v: number) => new Map([['w', tensorFromF32([1], new Float32Array([v]))]]);

test('every content hash in a body counts as referenced, nested or inside longer text', (t) => {
  const a = `sha256:${'a'.repeat(64)}`;
  const b = `sha256:${'b'.repeat(64)}`;
  const c = `sha256:${'c'.repeat(64)}`;
  const records = [
    { body: { settings: { config: JSON.stringify({ initial: a }) } } },
    { body: { updates: [{ updateHash: b }], note: 'sha256:short' } },
    { body: { globalAdapterOut: c } },
  ] as unknown as RoundRecord[];
  t.deepEqual([...contentHashesIn(records)].sort(), [a, b, c]);
});

test('orphans are the stored sets neither the log nor the kept list names; temporary files are not sets', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-orphans-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new BlobStore(dir);
  const [named, kept, orphan] = [await store.put(set(1)), await store.put(set(2)), await store.put(set(3))];
  writeFileSync(join(dir, named.slice(7, 9), `.${named.slice(7)}.safetensors.0123.tmp`), 'x'); // a write in progress
  t.deepEqual(store.list(), [named, kept, orphan].sort());
  const records = [{ body: { globalAdapter: named } }] as unknown as RoundRecord[];
  t.deepEqual(orphanBlobs(store, records, [kept]), [orphan]);
  store.remove(orphan);
  t.false(store.has(orphan));
  t.true(store.has(named) && store.has(kept));
});
