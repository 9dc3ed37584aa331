// 'adapter:get' serves a global adapter chunk by chunk, reading only the requested chunk from the
// blob file: the chunks are the file's bytes, first, middle and last (a short one), and serving a
// chunk does not read the whole file, so a peer asking again and again costs the coordinator one
// chunk per request, not the adapter's size.

import test from 'ava';
import { readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { federationPaths, type ContentHash } from '@fedit/shared';
import { logRecords, startTestFederation, type TestFederation } from './helpers/federation.ts';
import { Peer, type Ack } from './helpers/peer.ts';

const MiB = 1024 * 1024;

async function initialAdapter(fed: TestFederation): Promise<{ hash: ContentHash; file: string }> {
  const config = (await logRecords(fed.root))[0];
  if (config.kind !== 'config') throw new Error('the log begins with its config record');
  const hash = config.body.globalAdapter as ContentHash;
  const file = join(federationPaths(fed.root).blobs, hash.slice(7, 9), `${hash.slice(7)}.safetensors`);
  return { hash, file };
}

async function enrolledPeer(fed: TestFederation): Promise<Peer> {
  const peer = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  return peer;
}

const chunk = (ack: Ack) => {
  if (!ack.ok) throw new Error(`adapter:get refused: ${JSON.stringify(ack.error)}`);
  return { data: Buffer.from(ack.data as Uint8Array), total: ack.total as number };
};

test('the chunks of a multi-chunk global adapter are its file bytes: first, middle and the short last one', async (t) => {
  // Rank 320 on every projection of the tiny model: an adapter of about 2.5 MiB, three chunks.
  const fed = await startTestFederation(t, {
    lora: {
      rank: 320,
      alpha: 16,
      dropout: 0,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    },
  });
  const { hash, file } = await initialAdapter(fed);
  const bytes = readFileSync(file);
  const total = Math.ceil(bytes.length / MiB);
  t.true(total >= 3 && bytes.length % MiB !== 0, `a file of ${bytes.length} bytes has a short last chunk`);
  const peer = await enrolledPeer(fed);
  t.teardown(() => peer.close());

  const got = [];
  // Out of order, as a resuming download may ask.
  for (const index of [total - 1, 0, 1, ...Array.from({ length: total - 2 }, (_, i) => i + 1)]) {
    const c = chunk(await peer.request('adapter:get', { hash, index }));
    t.is(c.total, total);
    t.deepEqual(c.data, bytes.subarray(index * MiB, (index + 1) * MiB), `chunk ${index}`);
    got[index] = c.data;
  }
  t.is(got.at(-1)!.length, bytes.length - (total - 1) * MiB, 'the last chunk is short');
  t.deepEqual(Buffer.concat(got), bytes);
  t.like(await peer.request('adapter:get', { hash, index: total }), {
    ok: false,
    error: { code: 'PROTOCOL_RANGE', field: 'payload.index' },
  });
  // And the peer's own download (which parses and checks the tensors) agrees.
  t.is((await peer.adapter(hash)).size, 2 * 7 * 2);
});

test('serving a chunk reads only that chunk: an adapter file over 2 GiB is served', async (t) => {
  const fed = await startTestFederation(t);
  const { hash, file } = await initialAdapter(fed);
  const head = readFileSync(file);
  // The file extended (sparse: no disk space is used) past what one read of a whole file can hold:
  // reading the whole file per request, as the coordinator once did, fails here.
  const size = 2 * 1024 * MiB + 3 * MiB + 17;
  truncateSync(file, size);
  t.teardown(() => truncateSync(file, head.length));
  t.is(statSync(file).size, size);
  const peer = await enrolledPeer(fed);
  t.teardown(() => peer.close());
  const total = Math.ceil(size / MiB);
  const first = chunk(await peer.request('adapter:get', { hash, index: 0 }));
  t.is(first.total, total);
  t.deepEqual(first.data.subarray(0, head.length), head);
  const last = chunk(await peer.request('adapter:get', { hash, index: total - 1 }));
  t.is(last.data.length, 17);
  t.deepEqual(last.data, Buffer.alloc(17));
});
