// Reading dataset files: a JSON array of records, or JSON Lines (one record per line), told apart
// by their first character, whatever the file is called. Every record keeps the line it starts
// on, so any later complaint about it can say file:line.
//
// JSON Lines are streamed line by line (a large file is never one string); a JSON array has to be
// read whole: it is one JSON value, and JSON.parse needs all of it.

import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { DatasetError } from './errors.ts';
import { JsonSyntaxError, scanJsonValue, scanTopLevelArray } from './json-scan.ts';

export type Container = 'json' | 'jsonl';

/** Where a record came from: the file as given, and the 1-based line it starts on. */
export interface SourceRef {
  file: string;
  line: number;
}

export type ReadItem =
  | { kind: 'record'; source: SourceRef; value: unknown }
  /** A JSON Lines line that is not valid JSON (or not UTF-8); the rest of the file is still read. */
  | {
      kind: 'invalid';
      source: SourceRef;
      column: number;
      code: 'invalid-json' | 'invalid-utf8';
      reason: string;
    };

/**
 * A JSON Lines file in which this many non-blank lines in a row, from the start, are invalid is
 * taken for something else than JSON Lines, and fails at once instead of after the whole file.
 */
const JSONL_GIVE_UP_AFTER = 100;

const UTF8_BOM = [0xef, 0xbb, 0xbf];

function isJsonWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/**
 * A folder given as a data file would fail on the first read with the operating system's
 * "illegal operation on a directory", which names no path; this says which one and what is wanted.
 * A missing file is left to open(), whose error names the path.
 */
async function assertNotFolder(file: string): Promise<void> {
  const stats = await stat(file).catch(() => undefined);
  if (stats?.isDirectory()) {
    throw new DatasetError(
      'DATASET_NOT_A_FILE',
      `${file}: is a folder; give a data file: a JSON array (.json) or JSON Lines (.jsonl) of instruction records`,
    );
  }
}

function syntaxError(file: string, line: number, column: number, reason: string): DatasetError {
  return new DatasetError('DATASET_SYNTAX', `${file}:${line}:${column}: ${reason}`);
}

/**
 * Tells a JSON array from JSON Lines by the first character that is not whitespace (after an
 * optional UTF-8 byte-order mark): '[' is an array, '{' is JSON Lines. Anything else is neither,
 * and fails naming the line and column where it stands.
 */
export async function detectContainer(file: string): Promise<Container> {
  await assertNotFolder(file);
  const handle = await open(file, 'r');
  try {
    const chunk = Buffer.alloc(64 * 1024);
    let line = 1;
    let column = 1;
    let first = true;
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) throw new DatasetError('DATASET_EMPTY', `${file}: the file is empty`);
      let i = 0;
      if (first) {
        first = false;
        if ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff)) {
          throw new DatasetError(
            'DATASET_ENCODING',
            `${file}: the file is UTF-16 encoded; fedit reads UTF-8 (save it as UTF-8 and try again)`,
          );
        }
        if (UTF8_BOM.every((b, k) => chunk[k] === b)) i = 3;
      }
      for (; i < bytesRead; i++) {
        const b = chunk[i];
        if (b === 0x5b) return 'json';
        if (b === 0x7b) return 'jsonl';
        if (!isJsonWhitespace(b)) {
          const shown =
            b >= 0x21 && b < 0x7f
              ? `'${String.fromCharCode(b)}'`
              : `byte 0x${b.toString(16).padStart(2, '0')}`;
          throw syntaxError(
            file,
            line,
            column,
            `not a JSON array ('[' ...) or JSON Lines ('{' ... one object per line): found ${shown}`,
          );
        }
        if (b === 0x0a) {
          line++;
          column = 1;
        } else column++;
      }
    }
  } finally {
    await handle.close();
  }
}

/**
 * The records of one file, in order, each with its source line. `container` overrides detection.
 * A JSON array that is not valid JSON throws DatasetError naming file:line:column; a JSON Lines
 * line that is not valid JSON is yielded as 'invalid' (and the file fails only when no line is
 * valid, which means it is not JSON Lines at all).
 */
export async function* readRecords(file: string, container?: Container): AsyncGenerator<ReadItem> {
  await assertNotFolder(file);
  const kind = container ?? (await detectContainer(file));
  if (kind === 'json') yield* readJsonArray(file);
  else yield* readJsonLines(file);
}

/** Offset of the first byte that is not part of valid UTF-8, or -1. Only called once decoding has failed. */
export function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (n === 0) return i;
    for (let k = 1; k <= n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
    const d = b[i + 1];
    // overlong forms, UTF-16 surrogates, code points past U+10FFFF
    if (
      (c === 0xe0 && d < 0xa0) ||
      (c === 0xed && d > 0x9f) ||
      (c === 0xf0 && d < 0x90) ||
      (c === 0xf4 && d > 0x8f)
    )
      return i;
    i += n + 1;
  }
  return -1;
}

function lineAndColumnOfByte(bytes: Uint8Array, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1 && i < offset; i = bytes.indexOf(0x0a, i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

async function* readJsonArray(file: string): AsyncGenerator<ReadItem> {
  const bytes = await readFile(file);
  let text: string;
  try {
    // The decoder drops a leading byte-order mark.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = lineAndColumnOfByte(bytes, Math.max(0, firstInvalidUtf8(bytes)));
    throw new DatasetError(
      'DATASET_ENCODING',
      `${file}:${at.line}:${at.column}: not valid UTF-8 (fedit reads UTF-8 text; re-save the file as UTF-8)`,
    );
  }
  let spans;
  try {
    spans = scanTopLevelArray(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) {
      throw syntaxError(file, err.line, err.column, `not valid JSON: ${err.reason}`);
    }
    throw err;
  }
  // The scanner has validated the whole text, so parsing it whole is safe; JSON.parse (native) is
  // much faster than parsing each element's slice.
  const values = JSON.parse(text) as unknown[];
  for (let i = 0; i < spans.length; i++) {
    yield { kind: 'record', source: { file, line: spans[i].line }, value: values[i] };
  }
}

/** Splits a byte stream on '\n' (a trailing '\r' is dropped later, with the whitespace). */
async function* byteLines(file: string): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      yield pending.length ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length) yield Buffer.concat(pending);
}

async function* readJsonLines(file: string): AsyncGenerator<ReadItem> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let lineNo = 0;
  let valid = 0;
  let firstInvalid: { line: number; column: number; reason: string } | undefined;
  let invalidBeforeFirstValid = 0;
  for await (const bytes of byteLines(file)) {
    lineNo++;
    let text: string;
    try {
      // Each line is decoded on its own; the decoder drops a byte-order mark at the start of line 1.
      text = decoder.decode(bytes);
    } catch {
      const column = Math.max(0, firstInvalidUtf8(bytes)) + 1;
      yield* invalid(lineNo, column, 'invalid-utf8', 'not valid UTF-8');
      continue;
    }
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      let column = 1;
      let reason = err instanceof Error ? err.message : String(err);
      try {
        scanJsonValue(text);
      } catch (scanErr) {
        if (!(scanErr instanceof JsonSyntaxError)) throw scanErr;
        column = scanErr.column;
        reason = scanErr.reason;
        if (valid === 0 && /end of the text|unterminated string/.test(reason)) {
          reason += ' (in JSON Lines each record must be on one line)';
        }
      }
      yield* invalid(lineNo, column, 'invalid-json', `not valid JSON: ${reason}`);
      continue;
    }
    valid++;
    yield { kind: 'record', source: { file, line: lineNo }, value };
  }
  if (valid === 0) {
    if (firstInvalid) {
      throw syntaxError(file, firstInvalid.line, firstInvalid.column, firstInvalid.reason);
    }
    throw new DatasetError('DATASET_EMPTY', `${file}: the file holds no records`);
  }

  function* invalid(
    line: number,
    column: number,
    code: 'invalid-json' | 'invalid-utf8',
    reason: string,
  ): Generator<ReadItem> {
    firstInvalid ??= { line, column, reason };
    if (valid === 0 && ++invalidBeforeFirstValid >= JSONL_GIVE_UP_AFTER) {
      throw syntaxError(
        file,
        firstInvalid.line,
        firstInvalid.column,
        `${firstInvalid.reason} (and the next ${JSONL_GIVE_UP_AFTER - 1} lines are not valid JSON either: ` +
          'this is not a JSON Lines file)',
      );
    }
    yield { kind: 'invalid', source: { file, line }, column, code, reason };
  }
}
