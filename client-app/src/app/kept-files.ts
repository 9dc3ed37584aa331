// The rules for the files the app keeps for itself (./settings-file.ts, ./history-file.ts): what
// happens when one is damaged, and when one is there but cannot be read.
//
//   damaged (not JSON, not the shape expected)  set aside as <name>.damaged (-2, -3, ... beside
//                                               earlier ones) for a look; the log says so and what
//                                               is used instead. The next save would otherwise
//                                               overwrite it.
//   there but unreadable (locked by a virus     left as it is and remembered: never written over
//   scanner, no permission, too many open       with what this session knows without it, and read
//   files)                                      again before the next save.

import { existsSync } from 'node:fs';
import { readFile, rename } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { isErrno } from '@fedit/shared';
import { ensurePrivateDir, writePrivateFile } from '../core/federation/store.ts';
import type { AppLog } from './app-log.ts';

export class KeptFiles {
  readonly #log: AppLog;
  /** Files that are there but could not be read: not damaged, so never set aside or written over. */
  readonly #unreadable = new Set<string>();

  constructor(log: AppLog) {
    this.#log = log;
  }

  /** Whether `path` was there but could not be read, the last time it was read. */
  isUnreadable(path: string): boolean {
    return this.#unreadable.has(path);
  }

  /**
   * The text of a kept file; undefined when there is none, or when it is there but cannot be read:
   * then it is remembered as unreadable and the log says so once, with what happens `meanwhile`.
   */
  async read(path: string, meanwhile: string): Promise<string | undefined> {
    try {
      const text = await readFile(path, 'utf8');
      this.#unreadable.delete(path);
      return text;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) {
        this.#unreadable.delete(path);
        return undefined;
      }
      if (!this.#unreadable.has(path)) {
        this.#log.warn(
          `${path} could not be read (${(error as Error).message}); it is left as it is, ${meanwhile}`,
        );
      }
      this.#unreadable.add(path);
      return undefined;
    }
  }

  /** Writes `value` as indented JSON, readable by this user only. */
  async write(path: string, value: unknown): Promise<void> {
    await ensurePrivateDir(dirname(path));
    await writePrivateFile(path, JSON.stringify(value, null, 2) + '\n');
  }

  /**
   * Moves a damaged file to `<name>.damaged` (`.damaged-2`, ... when an earlier one is there: that
   * one is kept too) for a look, and says in the log what is used `instead`.
   */
  async setAside(path: string, error: unknown, instead: string): Promise<void> {
    const why = error instanceof Error ? error.message : String(error);
    let aside = `${path}.damaged`;
    for (let n = 2; existsSync(aside); n++) aside = `${path}.damaged-${n}`;
    try {
      await rename(path, aside);
      this.#log.warn(`${path} was damaged (${why}); kept as ${basename(aside)}, ${instead}`);
    } catch (renameError) {
      this.#log.warn(
        `${path} was damaged (${why}) and could not be set aside (${(renameError as Error).message}); ${instead}`,
      );
    }
  }
}
