// Participants of different LoRA ranks through a real coordinator on loopback: under product-svd a
// rank-8 federation counts updates of ranks 8, 4 and 2 (each trained from the global adapter
// truncated to its rank) and the audit recomputes every round bit for bit; a rule that averages
// tensor by tensor refuses a lower rank at update:begin (UPDATE_RANK), and so does product-svd
// for an update whose tensors mix ranks.

import test from 'ava';
import {
  BlobStore,
  adapterSchema,
  auditFederation,
  federationPaths,
  tensorFromF32,
  tensorToF32,
  truncateAdapterRank,
  type RoundOpen,
  type RoundRecord,
  type Tensor,
} from '@fedit/shared';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const LORA = { rank: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj'] };
const THREE = { participantsPerRound: { fraction: 1, minimum: 3 }, minUpdates: 3 };

/**
 * What a participant of rank `rank` uploads: the global adapter truncated to `rank` (as the
 * participant's round does), moved by a small step that differs per participant and tensor.
 * `rankOf` may give a tensor another rank (a hostile update).
 */
function tensorsAtRank(
  global: Map<string, Tensor>,
  rank: number,
  k: number,
  rankOf: (name: string) => number = () => rank,
): Map<string, Tensor> {
  const values = new Map([...global].map(([n, t]) => [n, tensorToF32(t)]));
  const schema = adapterSchema(global);
  const out = new Map<string, Tensor>();
  for (const [name] of global) {
    const r = rankOf(name);
    const truncated = truncateAdapterRank(values, schema, r).get(name)!;
    const [rows, cols] = schema.get(name)!;
    const shape = name.includes('.lora_A.') ? [r, cols] : [rows, r];
    const moved = truncated.map((v, i) => v + 1e-3 * (1 + ((i * 7 + k * 13 + name.length) % 5)));
    out.set(name, tensorFromF32(shape, moved));
  }
  return out;
}

async function uploadAtRank(
  peer: Peer,
  open: RoundOpen,
  rank: number,
  k: number,
  rankOf?: (n: string) => number,
) {
  const global = await peer.adapter(open.globalAdapterHash);
  const update = await peer.update(open, { tensors: () => tensorsAtRank(global, rank, k, rankOf) });
  return peer.upload(update);
}

async function threePeers(t: Parameters<typeof startTestFederation>[0], settings: object) {
  const fed = await startTestFederation(t, { lora: LORA, ...THREE, ...settings });
  const peers: Peer[] = [];
  for (let i = 0; i < 3; i++) peers.push(await (await Peer.connect(fed.target())).join(fed.inviteToken()));
  t.teardown(() => peers.forEach((p) => p.close()));
  return { fed, peers };
}

test('product-svd: participants of ranks 8, 4 and 2 are counted for two rounds, and the audit recomputes both', async (t) => {
  const { fed, peers } = await threePeers(t, { rounds: 2, aggregation: { rule: 'product-svd' } });
  const before = snapshotBlobs(fed.root);
  const ranks = [8, 4, 2];
  for (const round of [1, 2]) {
    const open = await peers[0].roundOpen(round);
    for (const [k, peer] of peers.entries()) {
      const ack = await uploadAtRank(peer, open, ranks[k], k + round);
      t.true(ack.ok, JSON.stringify(ack));
    }
    await peers[0].roundClosed(round);
  }
  await fed.coordinator.finished;
  const closes = (await logRecords(fed.root)).filter((r) => r.kind === 'round-closed') as (RoundRecord & {
    kind: 'round-closed';
  })[];
  t.is(closes.length, 2);
  const blobs = new BlobStore(federationPaths(fed.root).blobs);
  for (const close of closes) {
    const stored = close.body.updates.map((u) => blobs.get(u.updateHash)!);
    const ranksStored = stored.map((tensors) => [...tensors.values()][0].shape[0]).sort((a, b) => a - b);
    t.deepEqual(ranksStored, [2, 4, 8], 'the stored updates keep their ranks');
  }
  const report = await auditFederation(fed.root);
  t.deepEqual(
    report.rounds.map((r) => r.aggregation),
    ['verified', 'verified'],
  );
  await assertStoreIntact(t, fed.root, before);
});

test('fedit refuses a rank-4 update in a rank-8 federation with UPDATE_RANK, naming the tensor and both shapes', async (t) => {
  const { peers } = await threePeers(t, { aggregation: { rule: 'fedit' } });
  const open = await peers[0].roundOpen(1);
  const ack = await uploadAtRank(peers[0], open, 4, 0);
  t.like(ack, { ok: false, error: { code: 'UPDATE_RANK' } });
  t.regex(
    (ack as { error: { message: string } }).error.message,
    /lora_A\.weight has shape \[4,64\], the global adapter's is \[8,64\]: a rank-4 update, and rule fedit aggregates only the federation's rank .*product-svd/,
  );
  t.true((await uploadAtRank(peers[1], open, 8, 1)).ok, 'the federation rank is still counted');
});

test('product-svd refuses an update whose tensors mix ranks (UPDATE_RANK)', async (t) => {
  const { peers } = await threePeers(t, { aggregation: { rule: 'product-svd' } });
  const open = await peers[0].roundOpen(1);
  const mixed = (name: string) => (name.includes('v_proj') ? 2 : 4);
  const ack = await uploadAtRank(peers[0], open, 4, 0, mixed);
  t.like(ack, { ok: false, error: { code: 'UPDATE_RANK' } });
  t.regex(
    (ack as { error: { message: string } }).error.message,
    /every tensor of one update has the same LoRA rank/,
  );
  const fullRank = await uploadAtRank(peers[1], open, 8, 1);
  t.true(fullRank.ok, JSON.stringify(fullRank));
});
