// Reading a round log file: one record per line (JSONL), each line the record's canonical JSON
// (canonical.ts) and "\n" (log.ts writes them).
//
// Crash safety. A crash mid-append can leave only the last line incomplete: a prefix of it, or, on
// file systems that extend the file before its data reaches the disk, NUL bytes where the data
// should be. Such a torn tail belongs to an append that never returned, so dropping it loses
// nothing that was acknowledged. readRoundLog reports it and repairRoundLog (or RoundLog.open)
// truncates it. Anything else that does not parse, or a line that is not in canonical form, is
// damage or tampering: it is reported with its line number and never repaired automatically.
//
// Two readers: parseRoundLog, for the coordinator, refuses a damaged log; scanRoundLog, for an
// auditor, reads every line and says what is wrong with each (verifyRoundLogLines reports it).

import { open, readFile, truncate } from 'node:fs/promises';
import { canonicalJson } from './canonical.ts';
import type { RoundRecord } from './record.ts';
import { parseRoundRecord } from './record-shape.ts';
import { RoundLogError } from './round-error.ts';
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

/** Truncates the file at `path` to `length` bytes and fsyncs it. */
export async function truncateDurably(path: string, length: number): Promise<void> {
  await truncate(path, length);
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
