// The end of a federation, over real sockets on loopback: after its last round the coordinator
// does not go away. Everyone online, selected in the last round or not, is told the federation
// finished and which adapter it ended with, and can fetch it; a participant who connects later is
// told the same at once; no round opens and updates are refused with FEDERATION_FINISHED. A
// coordinator started again on the finished federation serves it the same way, read-only.

import test, { type ExecutionContext } from 'ava';
import { hashTensors, type ContentHash } from '@fedit/shared';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer, type Ack } from './helpers/peer.ts';

function assertFinishedRefusal(t: ExecutionContext, ack: Ack, rounds: number, adapter: string): void {
  t.false(ack.ok, 'the upload is refused');
  if (ack.ok) return;
  t.is(ack.error.code, 'FEDERATION_FINISHED');
  t.is(
    ack.error.message,
    `the federation has ended (all ${rounds} rounds were run) and takes no more updates; its final adapter is ${adapter}`,
  );
}

test('after the last round the coordinator serves the final adapter to everyone, refuses updates, and does so again after a restart', async (t) => {
  // Two participants, one selected per round: whoever is left out of the last round must still end
  // up with its result.
  const fed = await startTestFederation(t, {
    rounds: 2,
    // No over-selection: exactly one is selected per round, so one is left out of the last.
    participantsPerRound: { fraction: 0.5, minimum: 1, overSelection: 1 },
    minUpdates: 1,
  });
  const peers = [
    await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'a'),
    await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'b'),
  ];
  t.teardown(() => peers.forEach((p) => p.close()));
  let lastOpen;
  for (const round of [1, 2]) {
    const open = await peers[0].roundOpen(round);
    t.is(open.selected.length, 1);
    const chosen = peers.find((p) => p.id === open.selected[0])!;
    t.like(await chosen.upload(await chosen.update(open)), { ok: true });
    await fed.waitFor('round-closed', (e) => e.round === round);
    lastOpen = open;
  }
  const closed = (await logRecords(fed.root)).filter((r) => r.kind === 'round-closed').at(-1);
  if (closed?.kind !== 'round-closed') return t.fail('round 2 has a round-closed record');
  const final = closed.body.globalAdapterOut as ContentHash;
  t.like(await fed.waitFor('finished'), { rounds: 2, adapter: final, earlier: false });

  // Both are told, the one left out of round 2 included, and both fetch the final adapter.
  const leftOut = peers.find((p) => !lastOpen!.selected.includes(p.id))!;
  t.truthy(leftOut, 'one participant was not selected in the last round');
  for (const peer of peers) {
    t.like(await peer.federationFinished(), { rounds: 2, adapterHash: final, round: 2, updates: 1 });
    t.is(hashTensors(await peer.adapter(final)), final, 'the final adapter is served as its hash says');
  }
  // The coordinator is still there a while later: no round opens, an update is refused by name.
  await new Promise((r) => setTimeout(r, 300));
  t.is(fed.events.filter((e) => e.type === 'round-open').length, 2, 'no third round opens');
  const late = await leftOut.update(lastOpen!, { values: (_, g) => g.map((v) => v - 2e-3) });
  assertFinishedRefusal(t, await leftOut.upload(late), 2, final);
  t.like(await leftOut.request('federation:info', {}), { ok: true });

  // A participant who comes back later is told at once, and fetches it.
  const back = await leftOut.reconnect();
  peers.push(back);
  t.like(await back.federationFinished(), { rounds: 2, adapterHash: final, round: 2, updates: 1 });

  // Started again on the finished federation: read-only, the same answers.
  const before = snapshotBlobs(fed.root);
  const recordsBefore = (await logRecords(fed.root)).length;
  await fed.restart();
  t.like(await fed.waitFor('finished', (e) => e.earlier), { rounds: 2, adapter: final, earlier: true });
  const again = await back.reconnect(fed.target());
  peers.push(again);
  t.like(await again.federationFinished(), { rounds: 2, adapterHash: final, round: 2, updates: 1 });
  t.is(hashTensors(await again.adapter(final)), final);
  assertFinishedRefusal(t, await again.upload(late), 2, final);
  // Unauthenticated, the answer is still "authenticate first", not what the federation holds.
  const stranger = await Peer.connect(fed.target());
  peers.push(stranger);
  t.like(await stranger.request('adapter:get', { hash: final, index: 0 }), {
    ok: false,
    error: { code: 'AUTH_REQUIRED' },
  });
  t.is((await logRecords(fed.root)).length, recordsBefore, 'serving read-only appends nothing to the log');
  await assertStoreIntact(t, fed.root, before);
});
