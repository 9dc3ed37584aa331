// The folder a person ran `fedit` from. `npm run fedit -- ...` starts the command in the
// repository root, whatever folder the person typed it in; npm keeps that folder in INIT_CWD.
// Relative paths on the command line (--data ./facts.jsonl, --out ./adapter) mean the person's
// folder, so the process moves there before parsing anything: every path option, present and
// future, then resolves as typed.

import { dirname, resolve } from 'node:path';

/** The repository's npm scripts that run the `fedit` command (package.json "scripts"). */
const FEDIT_SCRIPTS = ['fedit', 'demo'];

/**
 * The folder to work in when npm started this process as one of the repository's fedit scripts,
 * else undefined. npm's variables are inherited by every process a script starts (`npm test`
 * spawning fedit in some folder), so the process moves only when it is the script itself: the
 * script's name is a fedit script and it still runs where npm started it, the package's folder.
 */
export function npmUserFolder(env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  const { INIT_CWD, npm_lifecycle_event, npm_package_json } = env;
  if (!INIT_CWD || !npm_package_json || !FEDIT_SCRIPTS.includes(npm_lifecycle_event ?? '')) {
    return undefined;
  }
  return resolve(cwd) === dirname(resolve(npm_package_json)) ? INIT_CWD : undefined;
}
