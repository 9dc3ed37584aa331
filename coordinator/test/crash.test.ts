// The coordinator process killed with SIGKILL — `fedit coordinator start` as a child process —
// in the middle of a round (an update counted, another half uploaded), and in the middle of
// closing a round (before, during and after the round-closed record is written; a preloaded test
// hook picks the moment). Restarted on the same folder: the log verifies, a round that was not
// recorded as closed is recorded as aborted and never applied, a round recorded as closed is not
// applied again, and the participants reconnect and complete the next round.

import test, { type ExecutionContext } from 'ava';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { auditFederation, parseInvite, publicIdentity, type ContentHash } from '@fedit/shared';
import { createInvite, openFederationDir } from '../src/index.ts';
import { CoordinatorProcess, freePort, repoRoot } from './helpers/cli.ts';
import {
  assertStoreIntact,
  initTestFederation,
  logRecords,
  snapshotBlobs,
  type Target,
} from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const HOOK = pathToFileURL(join(repoRoot, 'coordinator/test/helpers/crash-hook.ts')).href;

async function setUp(t: ExecutionContext) {
  const root = await initTestFederation(t, { rounds: 2, minUpdates: 1 });
  const port = await freePort();
  const { config, identity } = openFederationDir(root);
  const target: Target = {
    url: `http://127.0.0.1:${port}`,
    federation: config.id,
    coordinator: publicIdentity(identity),
    config,
  };
  const token = () => parseInvite(createInvite(root, { url: target.url })).token;
  const processes: CoordinatorProcess[] = [];
  const peers: Peer[] = [];
  t.teardown(async () => {
    peers.forEach((p) => p.close());
    await Promise.all(processes.map((p) => p.kill9()));
  });
  const start = async (options: ConstructorParameters<typeof CoordinatorProcess>[2] = {}) => {
    const child = new CoordinatorProcess(root, port, options);
    processes.push(child);
    await child.line(/listening on http:\/\/127\.0\.0\.1:/);
    return child;
  };
  const track = (peer: Peer) => {
    peers.push(peer);
    return peer;
  };
  return { root, target, token, start, track, before: snapshotBlobs(root) };
}

/** Round records as `round:kind`. */
async function roundKinds(root: string): Promise<string[]> {
  return (await logRecords(root))
    .filter((r) => r.kind.startsWith('round-'))
    .map((r) => `${r.round}:${r.kind}`);
}

/**
 * The log after round 1 was cut by a crash: recorded as aborted on restart, not counted toward the
 * federation's 2 rounds, so rounds 2 and 3 run.
 */
const ROUND_1_ABORTED_THEN_2_AND_3 = [
  '1:round-open',
  '1:round-aborted',
  '2:round-open',
  '2:round-closed',
  '3:round-open',
  '3:round-closed',
];

test('kill -9 mid-round: restarted, round 1 is recorded as aborted (not applied) and round 2 completes', async (t) => {
  const { root, target, token, start, track, before } = await setUp(t);
  const first = await start();
  const a = track(await (await Peer.connect(target)).join(token(), 'a'));
  const b = track(await (await Peer.connect(target)).join(token(), 'b'));
  const open1 = await a.roundOpen(1);
  await first.line(/round 1 open: 2 selected/);
  const initial = open1.globalAdapterHash;

  // b's update is counted; a's is half uploaded.
  t.like(await b.upload(await b.update(open1)), { ok: true });
  const partial = await a.update(open1);
  t.like(await a.upload(partial, 3), { ok: true });

  await first.kill9();
  t.is((await first.exited).signal, 'SIGKILL');
  await Promise.all([a.disconnected, b.disconnected]);
  const crashed = await auditFederation(root);
  t.true(crashed.ok, `the log verifies right after the crash: ${JSON.stringify(crashed.problems)}`);
  t.deepEqual(await roundKinds(root), ['1:round-open']);

  const second = await start();
  await second.line(/round 1 was open when the coordinator stopped; recorded as aborted/);
  const a2 = track(await a.reconnect());
  const b2 = track(await b.reconnect());
  // The half-finished upload of the aborted round is gone, and cannot be resumed into round 2.
  t.like(await a2.request('update:begin', { envelope: partial.envelope }), {
    ok: false,
    error: { code: 'ROUND_CLOSED', field: 'envelope.round' },
  });
  const open2 = await a2.roundOpen(2);
  t.is(open2.globalAdapterHash, initial, 'round 1 was not applied');
  t.like(await a2.upload(await a2.update(open2)), { ok: true });
  t.like(await b2.upload(await b2.update(open2)), { ok: true });
  t.like(await a2.roundClosed(2), { outcome: 'aggregated', participants: 2 });
  // The aborted round does not count toward the federation's 2 rounds: a third one runs.
  const open3 = await a2.roundOpen(3);
  for (const p of [a2, b2]) t.like(await p.upload(await p.update(open3)), { ok: true });
  await second.line(/all rounds done/);

  t.deepEqual(await roundKinds(root), ROUND_1_ABORTED_THEN_2_AND_3);
  const records = await logRecords(root);
  const closed = records.find((r) => r.kind === 'round-closed');
  if (closed?.kind === 'round-closed') t.is(closed.body.globalAdapterIn, initial);
  // b's round-1 update stays in the blob store, referenced by no record: stored, never applied.
  await assertStoreIntact(t, root, before, { orphans: 1 });
  t.notRegex(second.stderr, /Error|at /, second.stderr);
});

const crashWhileClosing = test.macro(
  async (t, point: 'before-close-record' | 'torn-close-record' | 'after-close-record') => {
    const { root, target, token, start, track, before } = await setUp(t);
    const first = await start({ preload: [HOOK], env: { FEDIT_TEST_CRASH: point } });
    const a = track(await (await Peer.connect(target)).join(token(), 'a'));
    const b = track(await (await Peer.connect(target)).join(token(), 'b'));
    const open1 = await a.roundOpen(1);
    for (const p of [a, b]) t.like(await p.upload(await p.update(open1)), { ok: true });
    t.is((await first.exited).signal, 'SIGKILL', first.stdout + first.stderr);
    t.regex(first.stdout, new RegExp(`crash-hook: SIGKILL at ${point}`));

    const crashed = await auditFederation(root);
    t.true(crashed.ok, JSON.stringify(crashed.problems));
    t.is(
      crashed.tornTail !== undefined,
      point === 'torn-close-record',
      'a torn line only where one was left',
    );
    const applied = point === 'after-close-record';
    t.deepEqual(await roundKinds(root), applied ? ['1:round-open', '1:round-closed'] : ['1:round-open']);

    const second = await start();
    const a2 = track(await a.reconnect());
    const b2 = track(await b.reconnect());
    const open2 = await a2.roundOpen(2);
    const records = await logRecords(root);
    const closed1 = records.find((r) => r.kind === 'round-closed' && r.round === 1);
    if (applied) {
      t.false(second.stdout.includes('recorded as aborted'));
      t.is(closed1?.kind, 'round-closed');
      if (closed1?.kind === 'round-closed')
        t.is(
          open2.globalAdapterHash,
          closed1.body.globalAdapterOut as ContentHash,
          'round 2 trains from round 1',
        );
    } else {
      await second.line(/round 1 was open when the coordinator stopped; recorded as aborted/);
      t.is(closed1, undefined);
      t.is(open2.globalAdapterHash, open1.globalAdapterHash, 'round 1 was not applied');
    }
    for (const p of [a2, b2]) t.like(await p.upload(await p.update(open2)), { ok: true });
    t.like(await b2.roundClosed(2), { outcome: 'aggregated', participants: 2 });
    if (!applied) {
      // The aborted round does not count toward the federation's 2 rounds: a third one runs.
      const open3 = await a2.roundOpen(3);
      for (const p of [a2, b2]) t.like(await p.upload(await p.update(open3)), { ok: true });
    }
    await second.line(/all rounds done/);

    t.deepEqual(
      await roundKinds(root),
      applied
        ? ['1:round-open', '1:round-closed', '2:round-open', '2:round-closed']
        : ROUND_1_ABORTED_THEN_2_AND_3,
      'no round is applied twice',
    );
    // Not applied: the two round-1 updates and the aggregate computed before the crash are
    // stored but named by no record.
    await assertStoreIntact(t, root, before, { orphans: applied ? 0 : 3 });
  },
);

test(
  'kill -9 while closing, before the round-closed record is written',
  crashWhileClosing,
  'before-close-record',
);
test(
  'kill -9 while closing, in the middle of writing the round-closed record',
  crashWhileClosing,
  'torn-close-record',
);
test(
  'kill -9 while closing, right after the round-closed record is durable',
  crashWhileClosing,
  'after-close-record',
);
