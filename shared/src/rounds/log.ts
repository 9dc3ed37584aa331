// The round log on disk: one record per line (JSONL), each line the record's canonical JSON
// (canonical.ts) and "\n", appended and fsynced before append() returns. A record counts once its
// line, newline included, is on disk; nothing is ever rewritten.
//
// Crash safety. A crash mid-append can leave only the last line incomplete: a prefix of it, or, on
// file systems that extend the file before its data reaches the disk, NUL bytes where the data
// should be. Such a torn tail belongs to an append that never returned, so dropping it loses
// nothing that was acknowledged. readRoundLog reports it and repairRoundLog (or RoundLog.open)
// truncates it. Anything else that does not parse, or a line that is not in canonical form, is
// damage or tampering: it is reported with its line number and never repaired automatically.
//
// Writes go through a read-write handle at explicit offsets rather than an O_APPEND handle: on
// Windows an append-only handle can neither be fsynced nor truncated, and undoing a failed write
// (ENOSPC halfway through a line) needs both.

import { open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import nacl from 'tweetnacl';
import { syncDirectory } from '../fs/atomic.ts';
import { canonicalJson } from './canonical.ts';
import {
  parseRoundRecord,
  recordTime,
  roundRecordLine,
  signRoundRecord,
  verifyRoundRecordSignature,
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type UnsignedRoundRecord,
} from './record.ts';
import { RoundLogError } from './round-error.ts';
import { RoundLogChecker } from './verify.ts';
import { splitAppendedLines, type TornLine } from '../fs/lines.ts';

/** The incomplete last line a crash mid-append leaves. */
export type TornTail = TornLine;

export interface ParsedRoundLog {
  records: RoundRecord[];
  torn?: TornTail;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses the bytes of a round log. Tolerates one torn final line (returned in `torn`, not in
 * `records`); throws RoundLogError('ROUND_LOG_CORRUPT') naming the line for anything else.
 */
export function parseRoundLog(bytes: Uint8Array, source = '<buffer>'): ParsedRoundLog {
  const { lines, torn } = scanRoundLog(bytes, source);
  const records: RoundRecord[] = [];
  for (const l of lines) {
    if (l.damage !== undefined) {
      throw new RoundLogError(
        'ROUND_LOG_CORRUPT',
        `${source}: line ${l.line} (byte ${l.offset}) ${l.damage}; the log is damaged or was edited, and only a torn last line is repaired`,
      );
    }
    records.push(l.value as RoundRecord);
  }
  return torn ? { records, torn } : { records };
}

/** The line's JSON value when it has one, and why it is not a canonical record when it is not. */
function readLine(content: Uint8Array, label: string): { text?: string; value?: unknown; damage?: string } {
  let text: string;
  try {
    text = decoder.decode(content);
  } catch {
    return { text: new TextDecoder().decode(content), damage: 'is not valid UTF-8' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { text, damage: 'is not valid JSON' };
  }
  let record: RoundRecord;
  try {
    record = parseRoundRecord(value, label);
  } catch (err) {
    return { text, value, damage: `is not a round record: ${(err as Error).message}` };
  }
  try {
    if (canonicalJson(record) !== text)
      return { text, value, damage: 'is not in canonical form (key order, spacing or number format)' };
  } catch (err) {
    return { text, value, damage: `has no canonical encoding: ${(err as Error).message}` };
  }
  return { text, value };
}

/** One line of a round log as an auditor reads it (scanRoundLog). */
export interface LogLine {
  /** 1-based line number. */
  line: number;
  /** Byte offset where the line starts. */
  offset: number;
  /** The line as text (invalid UTF-8 replaced), for naming what a damaged line was. */
  text?: string;
  /** The line's JSON value; absent when it is not JSON at all. */
  value?: unknown;
  /** Why the line is not a canonical record; absent for a good line. */
  damage?: string;
}

/**
 * Reads every line of a round log without stopping at damage, for an auditor that reports each
 * problem instead of refusing the log (verifyRoundLogLines). A torn final line is left out and
 * returned in `torn`, as parseRoundLog does.
 */
export function scanRoundLog(bytes: Uint8Array, source = '<buffer>'): { lines: LogLine[]; torn?: TornTail } {
  const { lines, torn } = splitAppendedLines(bytes);
  const read = lines.map(({ line, offset, content }) => ({
    line,
    offset,
    ...readLine(content, `${source}:${line}`),
  }));
  return torn ? { lines: read, torn } : { lines: read };
}

/** Reads a round log file for an audit; see scanRoundLog. */
export async function scanRoundLogFile(path: string): Promise<{ lines: LogLine[]; torn?: TornTail }> {
  return scanRoundLog(await readFile(path), path);
}

/** Reads a round log file; see parseRoundLog. */
export async function readRoundLog(path: string): Promise<ParsedRoundLog> {
  const bytes = await readFile(path).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new RoundLogError('ROUND_LOG_CORRUPT', `${path}: no such round log`, { cause: err });
    }
    throw err;
  });
  return parseRoundLog(bytes, path);
}

/**
 * Truncates a torn last line off the log at `path` (durably) and returns what was removed, or
 * undefined when the log ends cleanly. Throws, changing nothing, when the log is damaged elsewhere.
 */
export async function repairRoundLog(path: string): Promise<TornTail | undefined> {
  const { torn } = await readRoundLog(path);
  if (torn) await truncateDurably(path, torn.offset);
  return torn;
}

async function truncateDurably(path: string, length: number): Promise<void> {
  await truncate(path, length);
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A record to append: the log fills in seq, federation, prevHash, time, hash and signature. */
export type RoundRecordDraft = {
  [K in RoundRecordKind]: {
    kind: K;
    body: RoundRecordBodies[K];
    /** Defaults: the next round for round-open, the open round for round-closed/-aborted, else the last round. */
    round?: number;
    /** Defaults to now, or the previous record's time if the clock went back. */
    time?: string;
  };
}[RoundRecordKind];

export interface RoundLogOptions {
  federation: string;
  /** The coordinator's tweetnacl Ed25519 secret key (64 bytes): it signs every record. */
  coordinatorSecretKey: Uint8Array;
  /** Truncate a torn last line left by a crash (default true). When false, a torn log is refused. */
  repair?: boolean;
  /** The clock (tests). */
  now?: () => Date;
}

/**
 * A federation's round log, open for appending. Every record is checked with the verifier before
 * it is written, so the log on disk always verifies; appends are serialised and durable.
 */
export class RoundLog {
  readonly path: string;
  readonly #checker: RoundLogChecker;
  readonly #secretKey: Uint8Array;
  readonly #now: () => Date;
  readonly #handle: FileHandle;
  #size: number;
  #last: RoundRecord | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed: string | undefined;
  /** The torn tail open() removed, if there was one (worth a line in the coordinator's log). */
  readonly repairedTail: TornTail | undefined;

  private constructor(
    path: string,
    handle: FileHandle,
    size: number,
    checker: RoundLogChecker,
    last: RoundRecord | undefined,
    options: RoundLogOptions,
    repairedTail: TornTail | undefined,
  ) {
    this.path = path;
    this.#handle = handle;
    this.#size = size;
    this.#checker = checker;
    this.#last = last;
    this.#secretKey = options.coordinatorSecretKey;
    this.#now = options.now ?? (() => new Date());
    this.repairedTail = repairedTail;
  }

  /**
   * Opens the log at `path`, creating it when absent. The existing records are checked (hash
   * chain, order, rounds, federation; the last one's signature against the key) before anything
   * can be appended.
   */
  static async open(path: string, options: RoundLogOptions): Promise<RoundLog> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const created = await open(path, 'a');
      await created.sync();
      await created.close();
      await syncDirectory(dirname(path));
      bytes = new Uint8Array(0);
    }
    const { records, torn } = parseRoundLog(bytes, path);
    if (torn) {
      if (options.repair === false) {
        throw new RoundLogError(
          'ROUND_LOG_TORN',
          `${path}: line ${torn.line} is torn (${torn.reason}); it was never acknowledged and can be truncated with repairRoundLog`,
        );
      }
      await truncateDurably(path, torn.offset);
    }

    const checker = new RoundLogChecker({ federation: options.federation });
    for (const record of records) {
      const [problem] = checker.add(record);
      if (problem) {
        throw new RoundLogError(
          problem.code === 'FEDERATION_MISMATCH' ? 'ROUND_LOG_FEDERATION' : 'ROUND_LOG_INVALID',
          `${path}: ${problem.message}; nothing will be appended to a log that does not verify`,
        );
      }
    }
    const last = records.at(-1);
    const { publicKey } = nacl.sign.keyPair.fromSecretKey(options.coordinatorSecretKey);
    if (last && !verifyRoundRecordSignature(last, publicKey)) {
      throw new RoundLogError(
        'ROUND_LOG_KEY',
        `${path}: its last record is not signed by the coordinator key given (public key ${Buffer.from(publicKey).toString('hex')})`,
      );
    }
    const handle = await open(path, 'r+');
    return new RoundLog(path, handle, torn ? torn.offset : bytes.length, checker, last, options, torn);
  }

  /** The last record, if any. */
  get last(): RoundRecord | undefined {
    return this.#last;
  }

  /** The verifier's state after the last record: eligible participants, open round, global adapter. */
  get state(): Pick<
    RoundLogChecker,
    | 'nextSeq'
    | 'head'
    | 'lastRound'
    | 'openRound'
    | 'globalAdapter'
    | 'eligibleParticipants'
    | 'participantKey'
    | 'isRevoked'
    | 'hasEnvelope'
  > {
    return this.#checker;
  }

  /**
   * Completes, signs and durably appends a record, and returns it. Throws
   * RoundLogError('ROUND_LOG_REJECTED') without writing when the record would make the log fail
   * verification (a participant counted who was not selected, a round closed that is not open...).
   */
  append(draft: RoundRecordDraft): Promise<RoundRecord> {
    const result = this.#queue.then(() => this.#append(draft));
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** Waits for pending appends and closes the file. */
  async close(): Promise<void> {
    await this.#queue;
    if (this.#closed === undefined) {
      this.#closed = 'the log was closed';
      await this.#handle.close();
    }
  }

  async #append(draft: RoundRecordDraft): Promise<RoundRecord> {
    if (this.#closed !== undefined)
      throw new RoundLogError('ROUND_LOG_CLOSED', `${this.path}: ${this.#closed}`);
    const checker = this.#checker;
    const round =
      draft.round ??
      (draft.kind === 'round-open'
        ? checker.lastRound + 1
        : draft.kind.startsWith('round-')
          ? (checker.openRound?.round ?? checker.lastRound)
          : checker.lastRound);
    let time = draft.time ?? recordTime(this.#now());
    if (draft.time === undefined && checker.lastTime !== undefined && time < checker.lastTime)
      time = checker.lastTime;
    const unsigned = {
      seq: checker.nextSeq,
      federation: checker.federation!,
      round,
      kind: draft.kind,
      prevHash: checker.head,
      time,
      body: draft.body,
    } as UnsignedRoundRecord;
    const record = signRoundRecord(unsigned, this.#secretKey);
    const { problems, commit } = checker.check(record);
    if (problems.length > 0) {
      throw new RoundLogError(
        'ROUND_LOG_REJECTED',
        `${this.path}: not appended, the log would not verify: ${problems.map((p) => `${p.message} [${p.code}]`).join('; ')}`,
      );
    }
    const bytes = new TextEncoder().encode(roundRecordLine(record));
    try {
      let written = 0;
      while (written < bytes.length) {
        const { bytesWritten } = await this.#handle.write(
          bytes,
          written,
          bytes.length - written,
          this.#size + written,
        );
        written += bytesWritten;
      }
      await this.#handle.sync();
    } catch (err) {
      await this.#undo(err);
      throw err;
    }
    this.#size += bytes.length;
    commit();
    this.#last = record;
    return record;
  }

  /** Removes a partly written line so the next append does not land behind it. */
  async #undo(cause: unknown): Promise<void> {
    try {
      await this.#handle.truncate(this.#size);
      await this.#handle.sync();
    } catch {
      this.#closed = `a write failed (${(cause as Error).message}) and the partial line could not be removed; reopen the log to repair it`;
    }
  }
}
