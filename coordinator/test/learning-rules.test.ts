// The rules that make a federation learn and resist poisoning, through a real coordinator and
// participants on loopback: the defaults stop one participant from taking over the average (an
// update scaled x1000, an inflated example count), a robust rule with a server optimizer keeps its
// state in the log so the audit recomputes every round, and FFA-LoRA's frozen A is enforced.

import test, { type ExecutionContext } from 'ava';
import { tensorToF32, updateNorm, type RoundRecord, type Tensor } from '@fedit/shared';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const values = (tensors: Map<string, Tensor>) => new Map([...tensors].map(([n, t]) => [n, tensorToF32(t)]));

/** An honest participant's trained values: the global adapter moved by a small, varied step. */
const honest = (k: number) => (name: string, g: Float32Array) =>
  g.map((v, i) => v + 1e-3 * (1 + ((i * 7 + k * 13 + name.length) % 5)));

/** Three participants run round 1; one of them (the last) may be poisoned. The new adapter's step. */
async function roundOneStep(
  t: ExecutionContext,
  settings: Parameters<typeof startTestFederation>[1],
  poison: { scale?: number; exampleCount?: number },
) {
  const fed = await startTestFederation(t, {
    participantsPerRound: { fraction: 1, minimum: 3 },
    minUpdates: 3,
    limits: { maxUpdateNorm: 1e6, maxUploadBytes: 16 * 1024 * 1024, maxExampleCount: 10_000_000 },
    ...settings,
  });
  const before = snapshotBlobs(fed.root);
  const peers: Peer[] = [];
  for (let i = 0; i < 3; i++) peers.push(await (await Peer.connect(fed.target())).join(fed.inviteToken()));
  t.teardown(() => peers.forEach((p) => p.close()));
  const open = await peers[0].roundOpen(1);
  const global = values(await peers[0].adapter(open.globalAdapterHash));
  for (const [k, peer] of peers.entries()) {
    const poisoned = k === 2;
    const step = honest(k);
    const update = await peer.update(open, {
      exampleCount: poisoned ? (poison.exampleCount ?? 10) : 10,
      values: (name, g) =>
        poisoned && poison.scale
          ? g.map((v, i) => v + poison.scale! * (step(name, g)[i] - v))
          : step(name, g),
    });
    t.like(await peer.upload(update), { ok: true });
  }
  const closed = await peers[0].roundClosed(1);
  const next = values(await peers[0].adapter(closed.adapterHash));
  const honestStep = updateNorm(new Map([...global].map(([n, g]) => [n, honest(0)(n, g)])), global);
  await fed.coordinator.finished;
  return { fed, before, moved: updateNorm(next, global) / honestStep };
}

test('by default, an update scaled x1000 moves the global adapter about as much as an honest one', async (t) => {
  const { fed, before, moved } = await roundOneStep(t, {}, { scale: 1000 });
  t.true(moved < 2, `moved ${moved.toFixed(2)} honest steps`);
  await assertStoreIntact(t, fed.root, before);
  const closed = (await logRecords(fed.root)).find((r) => r.kind === 'round-closed') as RoundRecord & {
    kind: 'round-closed';
  };
  t.like(closed.body.rule.config, { clipping: { kind: 'adaptive', multiplier: 2 }, weightCap: 1 });
  t.truthy(closed.body.metrics.clip_bound, 'the bound the round applied is in its record');
});

test('without clipping and cap (as before), the same poisoned update takes the average over', async (t) => {
  const legacy = {
    aggregation: { rule: 'fedit', weightCap: 10_000_000, clipping: { kind: 'fixed' as const, bound: 1e9 } },
  };
  const scaled = await roundOneStep(t, legacy, { scale: 1000 });
  t.true(scaled.moved > 100, `moved ${scaled.moved.toFixed(1)} honest steps`);
  const claimed = await roundOneStep(t, legacy, { scale: 10, exampleCount: 10_000_000 });
  t.true(claimed.moved > 9, `moved ${claimed.moved.toFixed(1)} honest steps`);
});

test('by default, a participant claiming 10^7 examples weighs as much as one with 10', async (t) => {
  const { moved } = await roundOneStep(t, {}, { scale: 1.5, exampleCount: 10_000_000 });
  // Equal weights: (1 + 1 + 1.5) / 3 honest steps, not the poisoner's 1.5 alone.
  t.true(moved < 1.3, `moved ${moved.toFixed(2)} honest steps`);
});

test('median with a FedAdam server: the state is stored, chained between rounds and recomputed by the audit', async (t) => {
  const fed = await startTestFederation(t, {
    rounds: 2,
    participantsPerRound: { fraction: 1, minimum: 3 },
    minUpdates: 3,
    aggregation: { rule: 'median', serverOptimizer: { kind: 'adam', lr: 0.01 } },
  });
  const before = snapshotBlobs(fed.root);
  const peers: Peer[] = [];
  for (let i = 0; i < 3; i++) peers.push(await (await Peer.connect(fed.target())).join(fed.inviteToken()));
  t.teardown(() => peers.forEach((p) => p.close()));
  for (const round of [1, 2]) {
    const open = await peers[0].roundOpen(round);
    for (const [k, peer] of peers.entries()) {
      t.like(await peer.upload(await peer.update(open, { values: honest(k + round) })), { ok: true });
    }
    await peers[0].roundClosed(round);
  }
  await fed.coordinator.finished;
  const closes = (await logRecords(fed.root)).filter((r) => r.kind === 'round-closed') as (RoundRecord & {
    kind: 'round-closed';
  })[];
  t.is(closes.length, 2);
  t.like(closes[0].body.rule, {
    name: 'median',
    config: { serverOptimizer: { kind: 'adam', lr: '0.01', beta1: '0.9', beta2: '0.99', tau: '0.001' } },
  });
  t.is(closes[0].body.serverStateIn, undefined, 'the first step starts from zeros');
  t.truthy(closes[0].body.serverStateOut);
  t.is(closes[1].body.serverStateIn, closes[0].body.serverStateOut, 'round 2 steps from round 1’s state');
  await assertStoreIntact(t, fed.root, before);
});

test('FFA-LoRA: an update whose lora_A moved is refused (and its sender dropped); ones that train B only are counted', async (t) => {
  const fed = await startTestFederation(t, {
    participantsPerRound: { fraction: 1, minimum: 3 },
    minUpdates: 2,
    training: {
      localSteps: 1,
      batchSize: 1,
      lr: 1e-2,
      cutoffLen: 32,
      template: 'chat',
      trainOnInputs: false,
      freezeLoraA: true,
    },
  });
  const before = snapshotBlobs(fed.root);
  const peers: Peer[] = [];
  for (let i = 0; i < 3; i++) peers.push(await (await Peer.connect(fed.target())).join(fed.inviteToken()));
  t.teardown(() => peers.forEach((p) => p.close()));
  const open = await peers[0].roundOpen(1);
  const moved = await peers[0].upload(await peers[0].update(open));
  t.like(moved, { ok: false, error: { code: 'UPDATE_FROZEN' } });
  t.regex((moved as { error: { message: string } }).error.message, /lora_A.*FFA-LoRA/);
  const onlyB = (name: string, g: Float32Array) => (name.includes('.lora_B.') ? g.map((v) => v + 1e-3) : g);
  for (const peer of peers.slice(1)) {
    const ack = await peer.upload(await peer.update(open, { values: onlyB }));
    t.true(ack.ok, JSON.stringify(ack));
  }
  t.is((await peers[1].roundClosed(1)).participants, 2);
  await fed.coordinator.finished;
  const closed = (await logRecords(fed.root)).find((r) => r.kind === 'round-closed') as RoundRecord & {
    kind: 'round-closed';
  };
  t.like(closed.body.rule.config, { frozenA: true });
  await assertStoreIntact(t, fed.root, before);
});
