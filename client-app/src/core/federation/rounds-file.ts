// A per-federation file of one entry per round in the participant's home, the form both the
// round results (results.ts: `results/<federation>.json`) and the held-out figures (held-out.ts:
// `held-out/<federation>.json`) are kept in:
//
//   { "version": 1, "rounds": [entry, ...] }   entries sorted by round, at most one a round
//
// A missing file reads as []; one that is not JSON, or whose rounds are not all entries, is a
// FEDERATION_HOME error naming the file (only an edit makes one: the file is written atomically,
// in a folder only this user may read).
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { corruptedHomeFile } from './errors.ts';
import { ensurePrivateDir, writePrivateFile } from './store.ts';

/** What a file's entries are: the check of one, and their description for the error. */
export interface RoundEntryKind<T extends { round: number }> {
  isEntry: (value: unknown) => value is T;
  /** e.g. 'held-out figures': the error says its "rounds" are not a list of them. */
  described: string;
}

/** The entries of the file at `path`, by ascending round ([] when there is no file). */
export async function readRoundEntries<T extends { round: number }>(
  path: string,
  kind: RoundEntryKind<T>,
): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  let rounds: unknown;
  try {
    rounds = (JSON.parse(text) as { rounds?: unknown }).rounds;
  } catch (error) {
    throw corruptedHomeFile(path, 'it is not JSON', error);
  }
  if (!Array.isArray(rounds) || !rounds.every(kind.isEntry))
    throw corruptedHomeFile(path, `its "rounds" are not a list of ${kind.described}`);
  return rounds;
}

/** Keeps `entry` (replacing an earlier entry of its round), atomically; the folder made private. */
export async function keepRoundEntry<T extends { round: number }>(
  path: string,
  kind: RoundEntryKind<T>,
  entry: T,
): Promise<void> {
  const rounds = (await readRoundEntries(path, kind)).filter((r) => r.round !== entry.round);
  rounds.push(entry);
  rounds.sort((a, b) => a.round - b.round);
  const dir = dirname(path);
  await ensurePrivateDir(dirname(dir)); // the home, private like the folder in it
  await ensurePrivateDir(dir);
  await writePrivateFile(path, JSON.stringify({ version: 1, rounds }, null, 2) + '\n');
}
