// Runs the real `fedit` command the way `npm run fedit -- ...` does (a process started from the
// repository root), for tests that judge it by exit code, stdout and stderr as a person would.

import type { ExecutionContext } from 'ava';
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const ENTRY = ['--conditions=source', '--import', 'tsx', 'client-app/src/cli/fedit.ts'];

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function fedit(...args: string[]): Promise<Run> {
  return new Promise((done, fail) => {
    execFile(
      process.execPath,
      [...ENTRY, ...args],
      { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number')
          fail(error); // could not start, or timed out
        else done({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** A long-running `fedit` process, for tests that interrupt or kill it. */
export function startFedit(...args: string[]): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [...ENTRY, ...args], { cwd: repoRoot });
}

/** A failure as a person should see it: exit 1, one "fedit: ..." line, nothing on stdout, no stack. */
export function assertCleanFailure(t: ExecutionContext, r: Run, pattern: RegExp): void {
  t.is(r.code, 1, `exit code; stderr:\n${r.stderr}`);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^fedit: /);
  t.regex(r.stderr.split('\n')[0], pattern);
  t.notRegex(r.stderr, /^\s+at /m, 'no stack trace');
}
