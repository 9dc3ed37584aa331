// Small file-system checks that several packages need, each with the caller's own error.

import { lstat, stat } from 'node:fs/promises';

export function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/** Whether anything (a file, a folder, a dangling link) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (err: unknown) => {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    },
  );
}

/** Resolves when `dir` is a folder; otherwise throws `error('missing')` or `error('not-a-folder')`. */
export async function requireFolder(
  dir: string,
  error: (why: 'missing' | 'not-a-folder') => Error,
): Promise<void> {
  const stats = await stat(dir).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) throw error('missing');
    throw err;
  });
  if (!stats.isDirectory()) throw error('not-a-folder');
}
