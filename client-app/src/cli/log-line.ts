// The lines a long-running command writes for its operator (`fedit coordinator start`, `fedit
// client run`): what happened, when (ISO-8601 UTC, milliseconds) and how much it matters (info,
// warn, error), so that a log kept by journald, Docker or a file can be read and searched later.
//
//   text   "2026-12-07T21:20:00.123Z INFO  round 1 open: 3 selected of 4 ready, ..."
//   json   one object a line, keys in this order: {"time", "level", "federation", "event", "msg",
//          ...fields}, the shape pino writes (its "msg", "time") with levels as words, so that log
//          shippers read it without a fedit-specific parser; a field named like one of the first
//          five is dropped rather than allowed to replace it
//
// Participants are named "display name (id8)": the name an operator recognises, and the first
// eight characters of the id that every record, status and revoke command uses.

import { Option } from 'commander';

/** How much a line matters: info (normal operation), warn (something refused or aborted), error. */
export type LogLevel = 'info' | 'warn' | 'error';
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LineLogOptions {
  format: LogFormat;
  /** Text lines start with the time and level (default). Off only where a person watches a terminal. */
  timestamps?: boolean;
  /** The federation every JSON line names. */
  federation?: string;
  /** Text lines carry it in brackets after the level (the federation, where a process serves several). */
  label?: string;
  /** Where lines go (default: stdout). */
  write?: (line: string) => void;
  now?: () => Date;
}

export type LogFields = Record<string, unknown>;

const RESERVED = new Set(['time', 'level', 'federation', 'event', 'msg']);

export class LineLog {
  readonly #o: LineLogOptions;

  constructor(options: LineLogOptions) {
    this.#o = options;
  }

  /** Whether lines are JSON objects (for callers that print something else for people). */
  get json(): boolean {
    return this.#o.format === 'json';
  }

  info(event: string, message: string, fields?: LogFields): void {
    this.log('info', event, message, fields);
  }

  warn(event: string, message: string, fields?: LogFields): void {
    this.log('warn', event, message, fields);
  }

  error(event: string, message: string, fields?: LogFields): void {
    this.log('error', event, message, fields);
  }

  log(level: LogLevel, event: string, message: string, fields: LogFields = {}): void {
    const write = this.#o.write ?? ((line: string) => process.stdout.write(line));
    write(this.format(level, event, message, fields) + '\n');
  }

  /** The line (without its newline) for one event; see the top of this file. */
  format(level: LogLevel, event: string, message: string, fields: LogFields = {}): string {
    const time = (this.#o.now?.() ?? new Date()).toISOString();
    if (this.#o.format === 'text') {
      const text = this.#o.label === undefined ? message : `[${this.#o.label}] ${message}`;
      return this.#o.timestamps === false ? text : `${time} ${level.toUpperCase().padEnd(5)} ${text}`;
    }
    const line: LogFields = { time, level };
    if (this.#o.federation !== undefined) line.federation = this.#o.federation;
    line.event = event;
    line.msg = message;
    for (const [key, value] of Object.entries(fields)) if (!RESERVED.has(key)) line[key] = value;
    return JSON.stringify(line);
  }
}

/** "display name (id8)", or the id8 alone for a participant without a name. */
export function participantLabel(id: string, displayName?: string): string {
  const short = id.slice(0, 8);
  return displayName ? `${displayName} (${short})` : short;
}

/** --log-format: text lines with time and level, or one JSON object a line. */
export const logFormatOption = () =>
  new Option(
    '--log-format <format>',
    'text: lines with ISO-8601 UTC time and level; json: one JSON object a line {time, level, federation, event, msg, ...}',
  )
    .choices([...LOG_FORMATS])
    .default('text');
