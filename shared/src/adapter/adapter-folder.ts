// Where an adapter folder goes, and how it gets there safely (adapter.ts writes its files): the
// target must be new, empty or an earlier adapter (checkAdapterTarget); a complete folder written
// beside it is renamed into place, the old one moved aside first (commitFolder), so a reader sees
// the old adapter or the new one, never one file of each; a write interrupted by a crash is
// repaired on the next write (repairInterruptedWrites).

import { constants } from 'node:fs';
import { access, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { syncDirectory } from '../fs/atomic.ts';
import { isErrno, pathExists } from '../fs/paths.ts';
import { AdapterError } from './adapter-error.ts';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** The model card, as PEFT's save_pretrained names it. */
export const README_FILE = 'README.md';
/** The loss history `fedit train` writes beside the adapter, as Hugging Face's Trainer names it. */
export const TRAINER_STATE_FILE = 'trainer_state.json';

/**
 * The files an adapter folder may hold: what writeAdapter writes, the model card PEFT's
 * save_pretrained writes beside them, and a training run's trainer_state.json. A folder holding only these is an earlier adapter that
 * `overwrite` may replace; anything else there is someone's data, which writing an adapter
 * never deletes.
 */
const ADAPTER_FOLDER_FILES: ReadonlySet<string> = new Set([
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  README_FILE,
  TRAINER_STATE_FILE,
]);

/**
 * Fails, before anything is written, when `dir` cannot become the adapter folder: it must not
 * exist, be an empty folder, or (with `overwrite`) hold only an earlier adapter's files. Its
 * nearest existing ancestor must be a writable folder. Long jobs call this before they start, so
 * that a bad output path fails at once and not after hours of training.
 */
export async function checkAdapterTarget(dir: string, options: { overwrite?: boolean } = {}): Promise<void> {
  const target = resolve(dir);
  await repairInterruptedWrites(target);
  await checkTarget(target, options.overwrite ?? false);
}

async function checkTarget(target: string, overwrite: boolean): Promise<void> {
  if (!(await reachable(target))) {
    await checkCreatable(target);
    return;
  }
  if (!(await isDirectory(target))) {
    throw new AdapterError(
      'ADAPTER_EXISTS',
      `${target}: exists and is not a folder; choose another place for the adapter`,
    );
  }
  const entries = await readdir(target);
  if (entries.length === 0) return;
  if (!overwrite) {
    throw new AdapterError(
      'ADAPTER_EXISTS',
      `${target}: already holds files; choose an empty or new folder, or ask to overwrite it`,
    );
  }
  const foreign = entries.filter((name) => !ADAPTER_FOLDER_FILES.has(name)).sort();
  if (foreign.length > 0) {
    const shown =
      foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? `, and ${foreign.length - 5} more` : '');
    throw new AdapterError(
      'ADAPTER_EXISTS',
      `${target}: holds ${shown}, which ${foreign.length === 1 ? 'is' : 'are'} not part of an adapter; an adapter replaces only an earlier adapter (${[...ADAPTER_FOLDER_FILES].join(', ')}), so choose an empty or new folder`,
    );
  }
}

/** The nearest existing ancestor of a missing `target` must be a folder this process can write in. */
async function checkCreatable(target: string): Promise<void> {
  let ancestor = dirname(target);
  while (!(await reachable(ancestor)) && dirname(ancestor) !== ancestor) ancestor = dirname(ancestor);
  if (!(await isDirectory(ancestor))) {
    throw new AdapterError(
      'ADAPTER_EXISTS',
      `${target}: cannot be created because ${ancestor} is a file, not a folder; choose another place for the adapter`,
    );
  }
  try {
    await access(ancestor, constants.W_OK);
  } catch {
    throw new AdapterError(
      'ADAPTER_EXISTS',
      `${target}: cannot be created because ${ancestor} is not writable; choose another place for the adapter`,
    );
  }
}

/**
 * Leftovers of a write that a crash interrupted, beside `target`: staging folders
 * `.<name>.tmp-XXXXXX` and the earlier adapter moved aside as `.<name>.tmp-XXXXXX.previous`.
 */
async function interruptedWrites(target: string): Promise<{ staging: string[]; previous: string[] }> {
  const prefix = `.${basename(target)}.tmp-`;
  const names = await readdir(dirname(target)).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [] as string[];
    throw err;
  });
  // mkdtemp appends six characters; a longer tail belongs to another folder's name.
  const ours = names
    .filter(
      (name) => name.startsWith(prefix) && /^[A-Za-z0-9]{6}(\.previous)?$/.test(name.slice(prefix.length)),
    )
    .map((name) => join(dirname(target), name));
  return {
    staging: ours.filter((path) => !path.endsWith(PREVIOUS_SUFFIX)),
    previous: ours.filter((path) => path.endsWith(PREVIOUS_SUFFIX)),
  };
}

const PREVIOUS_SUFFIX = '.previous';

/** The staging folder of the write that moved `previous` aside. */
const stagingOf = (previous: string) => previous.slice(0, -PREVIOUS_SUFFIX.length);

/**
 * The earlier adapters moved aside by writes that have not (yet) renamed their staging folder into
 * place: a `.previous` folder whose staging sibling still exists. Only these may stand in for a
 * missing target; a `.previous` folder without its sibling was superseded by its write's adapter.
 */
export async function movedAsideMidWrite(target: string): Promise<string[]> {
  const { staging, previous } = await interruptedWrites(target);
  return previous.filter((moved) => staging.includes(stagingOf(moved)));
}

/**
 * Puts `target` in order after crashes inside writeAdapter; only a writer calls it, never a reader
 * (see commitFolder for the states). A write killed between its renames left the target missing,
 * the earlier adapter in `.previous` and the complete new one in its staging sibling: the earlier
 * adapter is moved back, since the new one was never reported written. Everything else beside the
 * target is then a leftover: staging folders of unfinished writes, and `.previous` folders whose
 * write went through (its staging folder was renamed into place; the adapter that replaced this
 * one may since have been deleted, which never brings this older one back). Both are removed,
 * except a `.previous` folder holding anything but an adapter's files (written by an older fedit),
 * which is left for its owner: writing an adapter never deletes other data.
 */
async function repairInterruptedWrites(target: string): Promise<void> {
  const aside = await movedAsideMidWrite(target);
  if (aside.length > 0 && !(await reachable(target))) {
    // Only concurrent writes to one folder, each killed between its renames, leave several.
    if (aside.length > 1) {
      throw new AdapterError(
        'ADAPTER_EXISTS',
        `${target}: is missing, and ${aside.length} interrupted writes each moved an earlier adapter aside (${aside.join(', ')}); move the one to keep to ${target} and delete the others`,
      );
    }
    // Renamed back before its staging folder is removed: killed in between, the state is that of
    // a write killed before its first rename.
    await rename(aside[0], target);
  }
  const { staging, previous } = await interruptedWrites(target);
  for (const folder of staging) await rm(folder, { recursive: true, force: true });
  for (const moved of previous) {
    if (await holdsOnlyAdapterFiles(moved)) await rm(moved, { recursive: true, force: true });
  }
}

async function holdsOnlyAdapterFiles(dir: string): Promise<boolean> {
  const names = await readdir(dir).catch((err: unknown) => {
    // Gone already (its own write removed it), or a file: nothing of ours to remove.
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  });
  return names !== undefined && names.every((name) => ADAPTER_FOLDER_FILES.has(name));
}

/**
 * Moves the complete `staging` folder (S) to `target` (T), replacing an empty folder or (if allowed)
 * an earlier adapter, which is renamed aside to P = S + ".previous" first and removed last:
 *
 *   1. rename T -> P     killed after: T missing, P old, S new. Readers read P where it lies (the
 *                        only P with its S beside it); the next write moves P back to T.
 *   2. rename S -> T     killed after: T new, P old without S. Readers read T; the next write
 *                        removes P, and never restores it, even once T has been deleted.
 *   3. remove P          done. Killed before 1 (S perhaps half written): T old, and the next
 *                        write removes S.
 *
 * A reader between 1 and 2 reads P; one whose folder is renamed or removed while it reads starts
 * again (readAdapter). Readers change nothing, so a writer's renames never find their paths taken.
 * If rename 2 fails, P is moved back before the caller removes S, which would make P look stale.
 * Two writes to one target at once are not coordinated: the later one's repair may remove the
 * earlier one's staging folder, which then fails with an error; neither loses an adapter silently.
 */
export async function commitFolder(staging: string, target: string, overwrite: boolean): Promise<void> {
  await checkTarget(target, overwrite); // again: the folder may have changed while the files were written
  let previous: string | undefined;
  if (await pathExists(target)) {
    if ((await readdir(target)).length === 0) await rmdir(target);
    else {
      previous = `${staging}${PREVIOUS_SUFFIX}`;
      await rename(target, previous);
    }
  }
  try {
    await rename(staging, target);
  } catch (err) {
    if (previous) await rename(previous, target).catch(() => undefined);
    if (isErrno(err, 'ENOTEMPTY') || isErrno(err, 'EEXIST')) {
      throw new AdapterError(
        'ADAPTER_EXISTS',
        `${target}: another write filled it while this one was being written; write again to replace it`,
        { cause: err },
      );
    }
    throw err;
  }
  await syncDirectory(dirname(target));
  if (previous) await rm(previous, { recursive: true, force: true });
}

/** Whether something is at `path`; false too when a file stands where a folder on the way should be. */
export async function reachable(path: string): Promise<boolean> {
  return pathExists(path).catch((err: unknown) => {
    if (isErrno(err, 'ENOTDIR')) return false;
    throw err;
  });
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path)).isDirectory();
}
