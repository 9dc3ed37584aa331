// One-time enrolment invites. The coordinator keeps only a hash of each token, in an append-only
// file (invites.jsonl) that `fedit coordinator invite` and a running coordinator both append to;
// the state of an invite is the fold of its lines.
//
// Crash safety. Every line is written with one write and fsynced before the call returns, so an
// invite that was printed, or a "used" line the enrolment relies on, is on disk. A crash mid-write
// can leave only the last line incomplete (a prefix, or NUL bytes where the file was extended but
// its data never reached the disk), the rule of shared/src/fs/lines.ts, as for the round log: readers leave
// it out, and the next append truncates it first, or the new line would be glued to the fragment
// and make a damaged middle line that refuses every later enrolment. The two writers are separate
// processes, so appends (and that truncation) happen under a short lock, invites.lock: without it
// one writer could truncate away the line another had just appended after the fragment. A lock
// whose process is gone is taken over (removeStaleLock), never by deleting whatever is at the path.

import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  fstatSync,
  ftruncateSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  FeditError,
  createInviteToken,
  formatInvite,
  SchemaError,
  publicIdentity,
  schema,
  splitAppendedLines,
  type Infer,
} from '@fedit/shared';
import { openFederationDir } from './dir.ts';

export interface InviteState {
  tokenHash: string;
  createdAt: string;
  expiresAt?: string;
  note?: string;
  usedBy?: string;
  usedAt?: string;
}

// ---- the lines of invites.jsonl, declared once: a "created" line or a "used" line, told apart by
// `type`. A field a newer fedit adds is dropped, as before; a field this one reads must be there
// and of its form, or the file is refused naming the line and the field (INVITES_DAMAGED).

const KINDS = '"created" or "used"';
/** A JSON value in a message (`nothing` for a missing field). */
const shown = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));
const kind = <const K extends string>(value: K) => schema.literal(value, { expected: KINDS });
const words = schema.predicate<string>(
  (v) => typeof v === 'string',
  (v) => `must be a string, got ${shown(v)}`,
  'TYPE',
);
const someone = schema.predicate<string>(
  (v) => typeof v === 'string' && v.length > 0,
  (v) => `must be a participant id, got ${shown(v)}`,
);
/** A time as written here (toISOString); an unreadable expiry would otherwise never expire. */
const time = schema.predicate<string>(
  (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)),
  (v) => `must be a time such as "2026-01-01T00:00:00.000Z", got ${shown(v)}`,
);
const hash = schema.pattern(/^[0-9a-f]{64}$/, 'a token hash (64 lowercase hex digits)');
const line = <S extends schema.Shape>(shape: S) =>
  schema.object(shape, { others: 'drop', wording: { notObject: 'not an invite line (a JSON object)' } });

const createdLine = line({
  type: kind('created'),
  tokenHash: hash,
  createdAt: time,
  expiresAt: schema.optional(time),
  note: schema.optional(words),
});
const usedLine = line({ type: kind('used'), tokenHash: hash, by: someone, at: time });
const inviteLine = schema.union('type', [createdLine, usedLine]);
type InviteLine = Infer<typeof inviteLine>;

export const tokenHash = (token: Uint8Array) =>
  createHash('sha256').update('fedit/invite-token/v1').update(token).digest('hex');

const invitesPath = (root: string) => join(root, 'invites.jsonl');
const lockPath = (root: string) => join(root, 'invites.lock');

/** The longest an invite may stay valid (ten years): Date cannot hold much more, and no invite needs it. */
export const MAX_INVITE_HOURS = 10 * 366 * 24;

/**
 * The complete lines of an invites file and, when its last line is torn by a crash, the byte offset
 * that line starts at (the length the file is repaired to).
 */
function scanInvites(bytes: Uint8Array): { lines: { line: number; text: string }[]; tornAt?: number } {
  const { lines, torn } = splitAppendedLines(bytes);
  return {
    lines: lines.map(({ line, content }) => ({ line, text: Buffer.from(content).toString('utf8') })),
    tornAt: torn?.offset,
  };
}

function parseLine(path: string, line: number, text: string): InviteLine {
  let l: unknown;
  try {
    l = JSON.parse(text);
  } catch {
    throw new FeditError('INVITES_DAMAGED', `${path}:${line}: not valid JSON`);
  }
  try {
    return inviteLine.parse(l, '');
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    throw new FeditError('INVITES_DAMAGED', `${path}:${line}: ${error.message}`);
  }
}

export function readInvites(root: string): Map<string, InviteState> {
  const path = invitesPath(root);
  const out = new Map<string, InviteState>();
  if (!existsSync(path)) return out;
  // A torn last line is left out: its append never returned, so that invite was never handed out.
  for (const { line, text } of scanInvites(readFileSync(path)).lines) {
    if (!text.trim()) continue;
    const l = parseLine(path, line, text);
    if (l.type === 'created')
      out.set(l.tokenHash, {
        tokenHash: l.tokenHash,
        createdAt: l.createdAt,
        expiresAt: l.expiresAt,
        note: l.note,
      });
    else {
      // The first use is the one that counts: redeemInvite never writes a second, and a later line
      // must not hand the invite to someone else.
      const s = out.get(l.tokenHash);
      if (s && !s.usedBy) Object.assign(s, { usedBy: l.by, usedAt: l.at });
    }
  }
  return out;
}

/** How long a writer waits for another to finish its append before giving up. */
const LOCK_WAIT_MS = 5000;
/** A lock file without a readable pid younger than this may be one being written right now. */
const LOCK_WRITE_GRACE_MS = 1000;

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, someone else's
  }
}

/** What a lock file was when a writer judged it stale: its inode, when it was written, what it says. */
interface LockSighting {
  text: string;
  identity: string;
  ageMs: number;
}

/** The lock file as it is now (one open file, so the text and the inode belong together). */
function sightLock(path: string): LockSighting | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined; // released meanwhile
  }
  try {
    const stat = fstatSync(fd, { bigint: true });
    const text = readFileSync(fd, 'utf8');
    return {
      text,
      identity: `${stat.dev}:${stat.ino}:${stat.mtimeNs}:${text}`,
      ageMs: Date.now() - Number(stat.mtimeMs),
    };
  } finally {
    closeSync(fd);
  }
}

const sameLock = (path: string, seen: LockSighting) => sightLock(path)?.identity === seen.identity;

/**
 * Removes the stale lock `seen`, and nothing else. Between judging it stale and removing it,
 * another writer may have taken it over and written its own lock at the same path: removing by
 * path would then delete that live lock, and two writers would append at once. So the lock is
 * first renamed aside (atomic: it moves exactly one file) and only then compared with what was
 * judged stale (inode, modification time and text, which holds a nonce unique to each taking); a
 * lock that turns out to be another's is linked back into place at once.
 */
function removeStaleLock(path: string, seen: LockSighting): void {
  const aside = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else removed it
    throw err;
  }
  try {
    if (!sameLock(aside, seen)) {
      try {
        linkSync(aside, path);
      } catch (err) {
        // EEXIST: a third writer created its lock in the instant the live one was aside, and both
        // now hold it. That needs two writers to find the same stale lock and a third to arrive
        // within microseconds: the one window file locks without a kernel compare-and-swap leave.
        // Each holder's release removes only its own lock, so the next writer still waits.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  } finally {
    rmSync(aside, { force: true });
  }
}

/** Options of withInvitesLock, for tests. */
export interface InvitesLockOptions {
  /** How long to wait for another writer (default LOCK_WAIT_MS). */
  waitMs?: number;
  /** Called after a lock was judged stale and before it is removed (to interleave another writer). */
  beforeTakeover?: () => void;
}

/** Runs `fn` (synchronous) holding invites.lock; a lock left by a dead process is taken over. */
export function withInvitesLock<T>(root: string, fn: () => T, options: InvitesLockOptions = {}): T {
  const path = lockPath(root);
  // The pid names the holder; the nonce makes each taking's text unique, so a takeover can tell
  // the stale lock it judged from a new one at the same path, and a release removes only its own.
  const mine = `${process.pid} ${randomBytes(8).toString('hex')}`;
  const deadline = Date.now() + (options.waitMs ?? LOCK_WAIT_MS);
  for (;;) {
    try {
      writeFileSync(path, mine, { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const seen = sightLock(path);
    if (!seen) continue;
    const holder = Number(seen.text.split(' ')[0]);
    // fn never awaits, so this process never holds the lock here: one naming our pid is left over
    // from an earlier process that had it (a restarted container reuses pids).
    const stale =
      Number.isInteger(holder) && holder > 0
        ? holder === process.pid || !isRunning(holder)
        : seen.ageMs > LOCK_WRITE_GRACE_MS;
    if (stale) {
      options.beforeTakeover?.();
      removeStaleLock(path, seen);
      continue;
    }
    if (Date.now() > deadline)
      throw new FeditError(
        'INVITES_BUSY',
        `${path} is held by ${Number.isInteger(holder) && holder > 0 ? `process ${holder}` : 'another process'}; try again`,
      );
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  try {
    return fn();
  } finally {
    // Only our own lock, never one another writer put at this path (see removeStaleLock).
    if (sightLock(path)?.text === mine) rmSync(path, { force: true });
  }
}

/** Appends one line durably (call under the lock), first truncating a torn tail left by a crash. */
function appendLine(root: string, line: InviteLine): void {
  const path = invitesPath(root);
  if (existsSync(path)) {
    const { tornAt } = scanInvites(readFileSync(path));
    if (tornAt !== undefined) truncateSync(path, tornAt);
  }
  const bytes = Buffer.from(JSON.stringify(line) + '\n');
  const fd = openSync(path, 'a', 0o600);
  const before = fstatSync(fd).size;
  try {
    // A short write (a full disk) is undone, so the file never ends in a fragment this call made.
    if (writeSync(fd, bytes) !== bytes.length) throw new FeditError('INVITES_WRITE', `${path}: short write`);
    fsyncSync(fd);
  } catch (err) {
    try {
      ftruncateSync(fd, before);
    } catch {
      // the next append truncates the fragment instead
    }
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** A new invite string for the coordinator at `url`; only its hash is kept here. */
export function createInvite(
  root: string,
  options: { url: string; expiresInHours?: number; note?: string },
): string {
  const { config, identity } = openFederationDir(root);
  const hours = options.expiresInHours;
  if (hours !== undefined && !(Number.isFinite(hours) && hours > 0 && hours <= MAX_INVITE_HOURS))
    throw new FeditError(
      'INVITE_EXPIRY',
      `an invite expires after more than 0 and at most ${MAX_INVITE_HOURS} hours (ten years), not ${hours}`,
    );
  const token = createInviteToken();
  const now = Date.now();
  const expiresAt = hours ? now + hours * 3600_000 : undefined;
  withInvitesLock(root, () =>
    appendLine(root, {
      type: 'created',
      tokenHash: tokenHash(token),
      createdAt: new Date(now).toISOString(),
      expiresAt: expiresAt ? new Date(expiresAt).toISOString() : undefined,
      note: options.note,
    }),
  );
  return formatInvite({
    url: options.url,
    federation: config.id,
    coordinator: publicIdentity(identity),
    token,
    expiresAt,
  });
}

/**
 * Checks a presented token and marks it used by `participant` (durably, before the caller writes
 * the enrolment); throws a named refusal otherwise.
 *
 * Redeeming is idempotent for the participant that used the invite: the "used" line and the
 * enrolment record are two writes, and a crash or a failed log append between them leaves the
 * invite used but nobody enrolled. The same participant presenting the same invite again is then
 * let through (the caller has checked that it is not enrolled already), even after the invite's
 * expiry, which it met when it first redeemed; any other key is still refused.
 */
export function redeemInvite(
  root: string,
  token: Uint8Array,
  participant: string,
  refuse: (code: string, message: string) => never,
): void {
  const hash = tokenHash(token);
  withInvitesLock(root, () => {
    const state = readInvites(root).get(hash);
    if (!state) refuse('INVITE_UNKNOWN', "this invite is not one of this federation's");
    if (state!.usedBy === participant) return;
    if (state!.usedBy) refuse('INVITE_USED', 'this invite was already used; ask the operator for a new one');
    if (state!.expiresAt && Date.parse(state!.expiresAt) < Date.now())
      refuse('INVITE_EXPIRED', 'this invite has expired; ask the operator for a new one');
    appendLine(root, { type: 'used', tokenHash: hash, by: participant, at: new Date().toISOString() });
  });
}
