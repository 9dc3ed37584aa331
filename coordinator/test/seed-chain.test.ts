// The selection seeds of a real coordinator: init commits to a seed chain and keeps its secret
// owner-only; every round opened reveals the next value, across a restart in the middle of a round
// (the chain's position comes from the log, the secret from keys/seed-chain.json); a missing or
// foreign secret stops the coordinator before it opens a round.

import test from 'ava';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditFederation, seedChainLength, seedChainWalk, seedFromReveal } from '@fedit/shared';
import { startCoordinator } from '../src/index.ts';
import { initTestFederation, logRecords, startTestFederation } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const secretFile = (root: string) => join(root, 'keys', 'seed-chain.json');

test('every round-open reveals the next value of the chain init committed to, across a restart mid-round', async (t) => {
  const fed = await startTestFederation(t, {
    rounds: 2,
    participantsPerRound: { fraction: 1, minimum: 1 },
    minUpdates: 1,
    roundDeadlineSeconds: 600,
  });
  t.is(statSync(secretFile(fed.root)).mode & 0o777, 0o600, 'the secret is owner-only');
  const { secret, length } = JSON.parse(readFileSync(secretFile(fed.root), 'utf8')) as {
    secret: string;
    length: number;
  };
  t.is(length, seedChainLength(2));
  const [config] = await logRecords(fed.root);
  t.deepEqual(config.kind === 'config' && config.body.seedChain, {
    commitment: seedChainWalk(secret, length),
    length,
  });

  let trainer = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'trainer');
  t.teardown(() => trainer.close());
  t.like(await trainer.upload(await trainer.update(await trainer.roundOpen(1))), { ok: true });
  await fed.waitFor('round-closed', (e) => e.round === 1);
  await trainer.roundOpen(2);
  // Stopped while round 2 is open: the restarted coordinator aborts it and opens round 3 with v_3.
  await fed.restart();
  trainer = await trainer.reconnect(fed.target());
  t.like(await trainer.upload(await trainer.update(await trainer.roundOpen(3))), { ok: true });
  t.deepEqual(await fed.coordinator.finished, { completed: true });

  const records = await logRecords(fed.root);
  t.true(records.some((r) => r.kind === 'round-aborted' && r.round === 2));
  const opens = records.flatMap((r) => (r.kind === 'round-open' ? [r.body.selection] : []));
  const reveals = [1, 2, 3].map((j) => seedChainWalk(secret, length - j));
  t.deepEqual(
    opens.map((s) => s.reveal),
    reveals,
  );
  t.deepEqual(
    opens.map((s) => s.seed),
    reveals.map(seedFromReveal),
  );
  const report = await auditFederation(fed.root);
  t.true(report.ok, JSON.stringify(report.problems));
  t.is(report.selectionSeeds, 'committed');
});

test('a coordinator without the secret behind the commitment, or with another, refuses to start', async (t) => {
  const root = await initTestFederation(t);
  const start = () => startCoordinator({ dir: root, host: '127.0.0.1', port: 0 });
  const original = readFileSync(secretFile(root), 'utf8');

  rmSync(secretFile(root));
  await t.throwsAsync(start, { message: /seed-chain\.json: the seed chain secret is missing.*restore/s });

  const other = JSON.parse(original) as { secret: string; length: number };
  writeFileSync(secretFile(root), JSON.stringify({ ...other, secret: 'ab'.repeat(32) }));
  await t.throwsAsync(start, { message: /not the one behind the commitment in the round log/ });

  writeFileSync(secretFile(root), original);
  const running = await start();
  await running.close();
  t.pass();
});
