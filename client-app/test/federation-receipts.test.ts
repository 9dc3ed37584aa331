// Receipts and the signed log, as participants live them (receipts.ts): two real participants
// train two rounds against a coordinator on loopback; each keeps a receipt per counted update and
// `fedit client verify` says "your 2 of 2 updates are in the signed log". A forged receipt (its
// record hash, a proof's head signature, a head of another federation) is refused naming it. And a
// coordinator that forks its log (its folder copied after round 1, each copy running round 2) is
// caught by the participant that saw both heads, while it trains and with `fedit client verify`.

import test from 'ava';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openFederationDir, startCoordinator } from '@fedit/coordinator';
import { signTreeHead, type SignedTreeHead } from '@fedit/shared';
import { assertCleanFailure, fedit } from '../../test/fixtures/fedit-cli.ts';
import { readReceipts, receiptsPath } from '../src/core/federation/index.ts';
import { aliceAndBob, tinyLoopbackFederation } from './fixtures/loopback.ts';

test('every counted update gets a receipt, verify finds them all in the signed log, and forged receipts are refused', async (t) => {
  const fed = await tinyLoopbackFederation(t, { rounds: 2 });
  const { homes, federation, run } = await aliceAndBob(fed);
  await run();
  for (const home of homes) {
    const { receipts, heads } = await readReceipts(home, federation);
    t.deepEqual(
      receipts.map((r) => r.round),
      [1, 2],
    );
    t.true(heads.length >= 1);
    t.true(receipts.every((r) => r.head.federation === federation && r.head.size > r.seq));
  }
  const verified = await fedit('client', 'verify', '--home', homes[0]);
  t.is(verified.code, 0, verified.stderr);
  t.regex(
    verified.stdout,
    /^your 2 of 2 updates are in the signed log \(head of size \d+, root sha256:[0-9a-f]{64}\)\n$/,
  );
  const json = JSON.parse((await fedit('client', 'verify', '--json', '--home', homes[1])).stdout) as {
    verified: number;
    head: SignedTreeHead;
  };
  t.is(json.verified, 2);
  // Another participant's head meets this one's: the same log.
  const other = await fedit('client', 'verify', '--home', homes[0], '--head', JSON.stringify(json.head));
  t.is(other.code, 0, other.stderr);

  const path = receiptsPath(homes[0], federation);
  const honest = readFileSync(path, 'utf8');
  const forge = (edit: (file: { receipts: Record<string, unknown>[] }) => void) => {
    const file = JSON.parse(honest) as { receipts: Record<string, unknown>[] };
    edit(file);
    writeFileSync(path, JSON.stringify(file));
  };

  forge((f) => (f.receipts[0].recordHash = `sha256:${'ab'.repeat(32)}`));
  assertCleanFailure(
    t,
    await fedit('client', 'verify', '--home', homes[0]),
    /round 1's receipt names record sha256:(ab){32}, but the log holds sha256:[0-9a-f]{64} at seq \d+ \[LOG_RECEIPT\]/,
  );

  forge((f) => {
    const head = f.receipts[1].head as SignedTreeHead;
    head.signature = head.signature.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  });
  assertCleanFailure(
    t,
    await fedit('client', 'verify', '--home', homes[0]),
    /a head you kept \(size \d+\) is not signed by the coordinator key your invite pinned \[LOG_HEAD_SIGNATURE\]/,
  );

  // Replayed from another federation the same coordinator key signs for: refused by federation.
  const { identity } = openFederationDir(fed.fedDir);
  forge((f) => {
    const { signature: _, ...head } = f.receipts[0].head as SignedTreeHead;
    f.receipts[0].head = signTreeHead({ ...head, federation: 'another-study' }, identity.sign.secretKey);
  });
  assertCleanFailure(
    t,
    await fedit('client', 'verify', '--home', homes[0]),
    /a head you kept \(size \d+\) is federation another-study's, not .*'s \[LOG_HEAD_FEDERATION\]/,
  );
  writeFileSync(path, honest);
  t.is((await fedit('client', 'verify', '--home', homes[0])).code, 0);
});

test('a coordinator that forks its log is caught by the participant that saw both heads', async (t) => {
  const fed = await tinyLoopbackFederation(t, { rounds: 2 });
  const { homes, federation, run } = await aliceAndBob(fed);
  await run(1);
  const port = Number(new URL(fed.coordinator.url).port);
  await fed.coordinator.close();
  const forkDir = join(fed.dir, 'fork');
  cpSync(fed.fedDir, forkDir, { recursive: true });

  // The original runs round 2 with both participants: they keep its heads.
  const original = await startCoordinator({ dir: fed.fedDir, host: '127.0.0.1', port });
  await run(1);
  await original.close();
  // Two counted updates, two receipts (the round left open by the stop was aborted and retried).
  t.is((await readReceipts(homes[0], federation)).receipts.length, 2);

  // The fork, on the same address, runs its own round 2: the participants are shown another log.
  const fork = await startCoordinator({ dir: forkDir, host: '127.0.0.1', port });
  t.teardown(() => fork.close());
  const results = await Promise.allSettled([run(1)]);
  t.is(results[0].status, 'rejected');
  t.regex(
    ((results[0] as PromiseRejectedResult).reason as Error).message,
    // Whichever check meets the fork first names it: the signed announcement older than one seen,
    // or the tree heads.
    /the coordinator shows another log|the coordinator showed two different logs: (heads of size \d+ and \d+ are not consistent|its log now has \d+ records, but it signed a head of size \d+ before)/,
  );
  assertCleanFailure(
    t,
    await fedit('client', 'verify', '--home', homes[0]),
    /the coordinator showed two different logs: .* \[LOG_FORKED\]/,
  );
});
