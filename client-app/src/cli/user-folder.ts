// The folder a person ran `fedit` from. `npm run fedit -- ...` starts the command in the
// repository root, whatever folder the person typed it in; npm keeps that folder in INIT_CWD.
// Relative paths on the command line (--data ./facts.jsonl, --out ./adapter) mean the person's
// folder, so the process moves there before parsing anything: every path option, present and
// future, then resolves as typed.

/** The folder to work in when npm started fedit through one of the repository's scripts, else undefined. */
export function npmUserFolder(env: NodeJS.ProcessEnv): string | undefined {
  // npm_package_name is the package whose script runs: the repository's root package "fedit" for
  // `npm run fedit` and `npm run demo`. A script of another package that calls fedit has its own
  // reasons for its working folder and keeps it.
  if (env.npm_package_name !== 'fedit' || !env.INIT_CWD) return undefined;
  return env.INIT_CWD;
}
