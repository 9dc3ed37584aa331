// The round log on disk, open for appending: each record's line (log-file.ts) is written and
// fsynced before append() returns. A record counts once its line, newline included, is on disk;
// nothing is ever rewritten. Every record is checked by the verifier before it is written, so the
// log on disk always verifies; `state` is the fold of the records so far (state.ts), which the
// coordinator queries.
//
// Writes go through a read-write handle at explicit offsets rather than an O_APPEND handle: on
// Windows an append-only handle can neither be fsynced nor truncated, and undoing a failed write
// (ENOSPC halfway through a line) needs both.

import { open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import nacl from 'tweetnacl';
import { syncDirectory } from '../fs/atomic.ts';
import {
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
import { RoundLogChecker } from './checker.ts';
import { parseRoundLog, truncateDurably, type TornTail } from './log-file.ts';
import type { FederationState } from './state.ts';

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

  /**
   * The federation as the log says it is after the last record (the fold, state.ts): eligible
   * participants, open round, global adapter, envelopes seen. A live view: do not keep copies.
   */
  get state(): FederationState {
    return this.#checker.state;
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
    const state = this.#checker.state;
    const round =
      draft.round ??
      (draft.kind === 'round-open'
        ? state.lastRound + 1
        : draft.kind.startsWith('round-')
          ? (state.openRound?.round ?? state.lastRound)
          : state.lastRound);
    let time = draft.time ?? recordTime(this.#now());
    if (draft.time === undefined && state.lastTime !== undefined && time < state.lastTime)
      time = state.lastTime;
    const unsigned = {
      seq: state.nextSeq,
      federation: state.federation!,
      round,
      kind: draft.kind,
      prevHash: state.head,
      time,
      body: draft.body,
    } as UnsignedRoundRecord;
    const record = signRoundRecord(unsigned, this.#secretKey);
    const { problems, commit } = this.#checker.check(record);
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
