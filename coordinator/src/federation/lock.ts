// The federation folder's writer lock. The round log has exactly one writer: RoundLog appends at
// offsets it keeps in memory, so a second writer (a second coordinator, or `fedit coordinator
// revoke` while one runs) would overwrite records. A running coordinator holds the lock, and so
// does a revocation for its one append.
//
// The lock is `coordinator.lock` in the folder, created exclusively, holding the holder's process
// id. A lock whose process no longer runs (the coordinator crashed or was killed) is stale and is
// taken over. A lock naming this very process is ours only if this process took it: a container
// restarted after a crash runs the new coordinator under the same pid (often 1) as the old one.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { FeditError } from '@fedit/shared';

export const LOCK_FILE = 'coordinator.lock';

/** Lock files this process holds. */
const held = new Set<string>();

export interface FederationLock {
  readonly path: string;
  /** Removes the lock (only if it is still this holder's). */
  release(): void;
}

export interface Holder {
  pid: number;
  purpose: string;
  since: string;
}

/** Takes the writer lock of the federation folder `root`, or throws FEDERATION_BUSY naming the holder. */
export function lockFederation(root: string, purpose: string): FederationLock {
  const path = resolve(root, LOCK_FILE);
  const text = JSON.stringify({ pid: process.pid, purpose, since: new Date().toISOString() }) + '\n';
  if (!create(path, text)) {
    const holder = readHolder(path);
    const running = holder && (holder.pid === process.pid ? held.has(path) : isRunning(holder.pid));
    if (running) throw busy(root, holder);
    rmSync(path, { force: true }); // stale: its process is gone
    if (!create(path, text)) throw busy(root, readHolder(path)); // taken meanwhile
  }
  held.add(path);
  return {
    path,
    release() {
      held.delete(path);
      let current: string | undefined;
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        return;
      }
      if (current === text) rmSync(path, { force: true });
    },
  };
}

/** The process holding `root`'s lock and what for, when one that still runs holds it. */
export function lockHolder(root: string): Holder | undefined {
  const path = resolve(root, LOCK_FILE);
  const holder = readHolder(path);
  if (!holder) return undefined;
  return (holder.pid === process.pid ? held.has(path) : isRunning(holder.pid)) ? holder : undefined;
}

function create(path: string, text: string): boolean {
  try {
    writeFileSync(path, text, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function busy(root: string, holder: Holder | undefined): FeditError {
  return new FeditError(
    'FEDERATION_BUSY',
    `${root} is in use${holder ? ` by process ${holder.pid} (${holder.purpose}, since ${holder.since})` : ''}; stop it first`,
  );
}

function readHolder(path: string): Holder | undefined {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as Partial<Holder>;
    if (typeof value.pid === 'number' && Number.isInteger(value.pid) && value.pid > 0) {
      return { pid: value.pid, purpose: String(value.purpose ?? '?'), since: String(value.since ?? '?') };
    }
  } catch {
    // unreadable or torn (a crash while writing it): stale
  }
  return undefined;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
