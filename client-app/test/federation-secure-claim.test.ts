// A participant takes part in a secure round at most once (secure-marker.ts): a coordinator that
// ran the same round twice, once with this participant as a survivor and once as dropped, could
// subtract the two sums. The claim is exclusive and survives restarts (it is a file, never removed).

import test from 'ava';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  claimSecureRound,
  droppedSecureRounds,
  markSecureRound,
} from '../src/core/federation/secure-marker.ts';

test('a secure round is claimed once, by one of two concurrent tasks, and stays claimed after a restart', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'fedit-secure-claim-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const both = await Promise.all([claimSecureRound(home, 'fed', 3), claimSecureRound(home, 'fed', 3)]);
  t.deepEqual(both.sort(), [false, true]);
  t.false(await claimSecureRound(home, 'fed', 3));
  await markSecureRound(home, 'fed', 3);
  // A restart clears the in-progress mark (and logs the dropout), never the claim.
  t.deepEqual(await droppedSecureRounds(home, 'fed'), [3]);
  t.false(await claimSecureRound(home, 'fed', 3));
  t.true(await claimSecureRound(home, 'fed', 4));
  t.is(((await stat(join(home, 'rounds', 'fed', '3', 'secure-taken'))).mode & 0o777).toString(8), '600');
});
