// Lines of an append-only file (the round log, the invites file). Each append writes one line with
// its newline and is fsynced before it returns, so a crash can only tear the LAST line: cut short
// (no newline yet), or with NUL bytes where the file was extended but the data never reached the
// disk. Such a line belongs to an append that never returned; its caller repairs the file by
// truncating it at `torn.offset`. Damage anywhere else is not a crash and is for the caller to refuse.

const NEWLINE = 0x0a;

export interface FileLine {
  /** 1-based line number. */
  line: number;
  /** Byte offset where the line starts. */
  offset: number;
  /** The line's bytes, without its newline. */
  content: Uint8Array;
}

export interface TornLine {
  line: number;
  /** Byte offset where the torn line starts: the length the file is repaired to. */
  offset: number;
  /** How many bytes the torn line holds. */
  bytes: number;
  /** What tore it, in words. */
  reason: string;
}

/** The whole lines of `bytes`, and the torn last line when a crash left one. */
export function splitAppendedLines(bytes: Uint8Array): { lines: FileLine[]; torn?: TornLine } {
  const lines: FileLine[] = [];
  let offset = 0;
  for (let line = 1; offset < bytes.length; line++) {
    const end = bytes.indexOf(NEWLINE, offset);
    const terminated = end !== -1;
    const content = bytes.subarray(offset, terminated ? end : bytes.length);
    const last = !terminated || end + 1 === bytes.length;
    if (last && (!terminated || content.includes(0))) {
      const reason = terminated
        ? 'the last line holds NUL bytes: its data never reached the disk'
        : `the last line has no newline: an append was interrupted (${content.length} bytes written)`;
      return { lines, torn: { line, offset, bytes: bytes.length - offset, reason } };
    }
    lines.push({ line, offset, content });
    offset = end + 1;
  }
  return { lines };
}
