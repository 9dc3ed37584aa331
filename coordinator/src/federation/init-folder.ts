// The federation folder while `fedit coordinator init` creates it: a marker written first and
// removed last, so that an init stopped halfway (a crash, Ctrl-C) is recognised and cleared by the
// next one, and a folder holding anything else is never overwritten or mixed into.

import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FeditError,
  readRoundLog,
  syncDirectory,
  type FederationPaths,
  type RoundRecord,
} from '@fedit/shared';
import { REQUESTS_DIR } from './revoke-requests.ts';

/** The file init writes first and removes last: while it is there, init has not finished. */
export const INIT_MARKER = 'init-in-progress';
export const initMarker = (paths: FederationPaths) => join(paths.root, INIT_MARKER);

/** The names init creates in the federation folder, besides its marker. */
// requests/: a coordinator started on the folder makes it (revoke-requests.ts).
const INIT_FOLDERS = new Set(['keys', 'log', 'blobs', 'uploads', REQUESTS_DIR]);
/** The temporary file writeFileAtomic leaves when a crash stops it writing federation.json. */
const initTemporary = (name: string) => /^\.federation\.json\.[0-9a-f]+\.tmp$/.test(name);

/** A short list of a folder's entries for a message (the first few, and how many more). */
function describeEntries(names: readonly string[]): string {
  const shown = names.slice(0, 5).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}

/**
 * Makes `paths.root` ready for init: a new or empty folder, or one an interrupted init left (its
 * marker is there), cleared of what that init wrote. Anything else is refused and left as it is:
 * init writes blobs/, keys/ and log/, and must never delete or mix with files of the same names
 * that someone else keeps there.
 */
export async function prepareInitFolder(paths: FederationPaths): Promise<void> {
  const entries = existsSync(paths.root) ? readdirSync(paths.root).sort() : [];
  if (entries.includes(INIT_MARKER)) await clearInterruptedInit(paths, entries);
  else if (entries.length > 0)
    throw new FeditError(
      'FEDERATION_DIR_NOT_EMPTY',
      `${paths.root} is not empty (it holds ${describeEntries(entries)}): a federation is created in a ` +
        'new or empty folder, so that nothing of yours is overwritten or mixed into it. Choose another folder',
    );
  mkdirSync(paths.root, { recursive: true });
  // Written in place, not through a temporary file: only that it exists matters, and a crash
  // while writing it must not leave a stray file that makes the folder look foreign.
  writeFileSync(
    initMarker(paths),
    '`fedit coordinator init` is creating a federation here. If it was stopped before it finished, ' +
      'run it again on this folder: it clears what the stopped init wrote and starts over.\n',
  );
  await syncDirectory(paths.root);
}

/**
 * Removes what an init that stopped before writing federation.json left behind, so that init can
 * start over. The marker says the folder was empty when that init began, so its keys/, log/,
 * blobs/ and uploads/ are init's own. Anything else in the folder was put there since, and is
 * refused rather than deleted; so is a round log holding more than the config record (a
 * federation that ran and then lost its federation.json: clearing it would throw away its keys and
 * its log).
 */
async function clearInterruptedInit(paths: FederationPaths, entries: readonly string[]): Promise<void> {
  const lost = (what: string) =>
    new FeditError(
      'FEDERATION_EXISTS',
      `${paths.root} has no federation.json, but ${what}: this is a federation whose federation.json ` +
        'was lost, not an interrupted init. Restore federation.json from your backup (the round log ' +
        'records the config in its first record), or choose an empty folder',
    );
  if (entries.includes('invites.jsonl')) throw lost('invites were made in it (invites.jsonl)');
  const foreign = entries.filter((e) => e !== INIT_MARKER && !INIT_FOLDERS.has(e) && !initTemporary(e));
  if (foreign.length > 0)
    throw new FeditError(
      'FEDERATION_DIR_NOT_EMPTY',
      `${paths.root} holds what an interrupted \`fedit coordinator init\` left (${INIT_MARKER}), and also ` +
        `${describeEntries(foreign)}, which init does not write. Nothing was removed: move those ` +
        'elsewhere and run init again, or choose an empty folder',
    );
  if (existsSync(paths.log)) {
    let records: RoundRecord[];
    try {
      ({ records } = await readRoundLog(paths.log));
    } catch (err) {
      throw lost(`a round log that cannot be read (${(err as Error).message})`);
    }
    if (records.length > 1 || records.some((r) => r.kind !== 'config'))
      throw lost(`its round log holds ${records.length} records`);
  }
  for (const e of entries)
    if (e !== INIT_MARKER) rmSync(join(paths.root, e), { recursive: true, force: true });
}
