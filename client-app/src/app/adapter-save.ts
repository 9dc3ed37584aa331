// "Save adapter…": the federation's adapter as a PEFT adapter folder with its model card, written by
// `fedit client export`'s own code (core/federation/export.ts): the newest global adapter this
// computer keeps, which is the final one once the federation has ended. Works offline, from the
// adapter cache and the round results the participant keeps.
//
// The folder is where the person picked it (the system's folder picker in the app, a typed path in
// the development shell): an absolute path whose parent exists, and new or empty, so that saving
// never mixes an adapter into other files or writes over a folder that holds something.

import { readdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { exportCachedAdapter } from '../core/federation/export.ts';
import type { SavedAdapter } from './api.ts';
import type { FederationEnd } from './federation-end.ts';
import { AppError } from './validate.ts';

/**
 * Writes the newest global adapter of `federation` kept under `home` into the folder `out`.
 * `end`: the federation's end, when this computer knows it (then the adapter saved is the final
 * one, and the answer says so).
 */
export async function saveAdapterFolder(
  home: string,
  federation: string,
  out: string,
  end: FederationEnd | undefined,
): Promise<SavedAdapter> {
  const folder = await newOrEmptyFolder(out);
  const { result } = await exportCachedAdapter(home, { federation, out: folder });
  return {
    folder,
    round: result.round,
    adapterHash: result.adapterHash,
    final: end?.adapterHash === result.adapterHash,
    files: (await readdir(folder)).sort(),
  };
}

/** `path` (outer spaces dropped) when it is absolute, its parent a folder, and it is new or empty. */
async function newOrEmptyFolder(path: string): Promise<string> {
  const folder = path.trim();
  if (!isAbsolute(folder)) {
    throw new AppError(
      'APP_PATH',
      `the adapter folder must be an absolute path (starting at the root of a drive), got ${JSON.stringify(folder)}`,
    );
  }
  const parent = await stat(dirname(folder)).catch(() => undefined);
  if (!parent?.isDirectory()) throw new AppError('APP_PATH', `${dirname(folder)} is not a folder`);
  const here = await stat(folder).catch(() => undefined);
  if (!here) return folder;
  if (!here.isDirectory())
    throw new AppError('APP_PATH', `${folder} is a file: choose a new or empty folder`);
  if ((await readdir(folder)).length > 0) {
    throw new AppError('APP_PATH', `${folder} is not empty: choose a new or empty folder`);
  }
  return folder;
}
