// Owner-only permissions on what in a federation folder holds participants' updates or the
// coordinator's keys. Everyone's update (blobs/, uploads/) and the secret signing key were
// readable by any user of the machine: folders were created 0755 and files 0644 under the usual
// umask. fedit now creates them owner-only (folders 0700, files 0600: BlobStore, writeFileAtomic's
// `mode`, the uploads), and a coordinator starting on a folder made before tightens it and says
// which paths it changed. The folder itself becomes 0700 too, which also covers what is written
// through libraries that choose their own modes (index.json, by lowdb) and the round log.
//
// Windows has no such modes (chmod sets only the read-only flag there): nothing is done.

import { chmodSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, type FederationPaths } from '@fedit/shared';

/**
 * The paths to keep owner-only: the folder, the keys, every blob and upload. index.json (rewritten
 * by lowdb with its own mode at every save) is covered by the folder's 0700.
 */
function privatePaths(paths: FederationPaths): { dirs: string[]; files: string[]; trees: string[] } {
  return {
    dirs: [paths.root, join(paths.root, 'keys')],
    files: [paths.keys],
    trees: [paths.blobs, paths.uploads], // with everything inside
  };
}

/**
 * Makes every private path of the folder owner-only where it is not; returns the paths changed
 * (empty when all were owner-only already, or on Windows).
 */
export function tightenFederationFolder(paths: FederationPaths): string[] {
  if (process.platform === 'win32') return [];
  const changed: string[] = [];
  const tighten = (path: string, mode: number): void => {
    if (!existsSync(path)) return;
    if ((statSync(path).mode & 0o777) === mode) return;
    chmodSync(path, mode);
    changed.push(path);
  };
  const walk = (dir: string): void => {
    tighten(dir, PRIVATE_DIR_MODE);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) tighten(path, PRIVATE_FILE_MODE);
    }
  };
  const { dirs, files, trees } = privatePaths(paths);
  for (const dir of dirs) tighten(dir, PRIVATE_DIR_MODE);
  for (const file of files) tighten(file, PRIVATE_FILE_MODE);
  for (const tree of trees) if (existsSync(tree)) walk(tree);
  return changed;
}
