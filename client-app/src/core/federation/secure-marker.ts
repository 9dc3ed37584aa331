// A secure round in progress leaves one mark on disk, `<round dir>/secure-round` (empty, no secret
// in it): the round's keys and self seed live only in memory, so a participant that restarts while
// the mark is there has lost them and dropped out of that round. Its next start says so in its
// log, naming the round, and clears the mark; it takes part again from the next round. The mark is
// written before the participant advertises and removed when its part of the round ends.
//
// A second mark, `<round dir>/secure-taken`, is never removed: a participant takes part in a
// secure round at most once. A coordinator that announced the same signed round again (after the
// first run's task ended, or across a restart) and ran it with this participant listed as dropped
// would otherwise get two sums that differ by exactly this participant's input (training is
// seeded by the round, so the others' updates repeat).

import { open, readdir, rm, stat } from 'node:fs/promises';
import { PRIVATE_FILE_MODE } from '@fedit/shared';
import { join } from 'node:path';
import { ROUNDS_DIR, ensurePrivateDir, roundDir, writePrivateFile } from './store.ts';

const MARK = 'secure-round';
const TAKEN = 'secure-taken';

/**
 * Claims `round` for this participant's one part in it: true the first time (the mark is created
 * exclusively, so two tasks cannot both claim it), false ever after.
 */
export async function claimSecureRound(home: string, federation: string, round: number): Promise<boolean> {
  const dir = roundDir(home, federation, round);
  await ensurePrivateDir(join(home, ROUNDS_DIR));
  await ensurePrivateDir(join(home, ROUNDS_DIR, federation));
  await ensurePrivateDir(dir);
  try {
    await (await open(join(dir, TAKEN), 'wx', PRIVATE_FILE_MODE)).close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Marks `round` of `federation` as a secure round this participant is taking part in. */
export async function markSecureRound(home: string, federation: string, round: number): Promise<void> {
  const dir = roundDir(home, federation, round);
  await ensurePrivateDir(join(home, ROUNDS_DIR));
  await ensurePrivateDir(join(home, ROUNDS_DIR, federation));
  await ensurePrivateDir(dir);
  await writePrivateFile(join(dir, MARK), '');
}

/** This participant's part in `round` ended (in memory, with its secrets). */
export async function unmarkSecureRound(home: string, federation: string, round: number): Promise<void> {
  await rm(join(roundDir(home, federation, round), MARK), { force: true });
}

/** The secure rounds a previous run of this participant left marked (it restarted during them), cleared. */
export async function droppedSecureRounds(home: string, federation: string): Promise<number[]> {
  const base = join(home, ROUNDS_DIR, federation);
  const rounds: number[] = [];
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const mark = join(base, name, MARK);
    if (!(await stat(mark).catch(() => undefined))) continue;
    rounds.push(Number(name));
    await rm(mark, { force: true });
  }
  return rounds.sort((a, b) => a - b);
}

/** The log line of a secure round dropped by a restart. */
export function droppedByRestartWords(round: number): string {
  return `secure round ${round}: this participant restarted during the round; its keys for the round were kept in memory only, so it has dropped out of this round (the round goes on without it while enough participants remain); it takes part again from the next round`;
}
