// The one shape every dataset format becomes, and the shape of a row that could not be used.

import type { SourceRef } from './read.ts';

export type { SourceRef };

export interface UserTurn {
  role: 'user';
  content: string;
  /**
   * Supporting text the instruction refers to, kept apart from it: Alpaca's `input`, Dolly's
   * `context`. The alpaca template shows it under "### Input:"; the chat template appends it to
   * the user message after a blank line.
   */
  input?: string;
}

export interface AssistantTurn {
  role: 'assistant';
  content: string;
}

export type Turn = UserTurn | AssistantTurn;

/**
 * A training conversation: an optional system prompt, then user and assistant turns alternating,
 * starting with a user turn and ending with an assistant turn (the response to learn).
 */
export interface Conversation {
  system?: string;
  turns: Turn[];
  /** Dolly's category (or a `category` field of any format), when the record has one. */
  category?: string;
}

/** A usable record: its conversation, and where it came from. */
export interface Example extends Conversation {
  source: SourceRef;
}

/** Why a row was left out. Stable names, used to count rows by reason in the report. */
export type SkipCode =
  /** A JSON Lines line that is not valid JSON. */
  | 'invalid-json'
  /** A JSON Lines line that is not valid UTF-8. */
  | 'invalid-utf8'
  /** A record that is not a JSON object. */
  | 'not-an-object'
  /** A required field is absent (or null). */
  | 'missing-field'
  /** A required field is an empty or all-whitespace string, or an empty list of messages. */
  | 'empty-field'
  /** A field has the wrong JSON type. */
  | 'wrong-type'
  /** A message's role (ShareGPT `from`, OpenAI `role`) is not one fedit knows. */
  | 'unknown-role'
  /** Turns do not alternate user/assistant, or a system message is not first. */
  | 'bad-turn-order'
  /** The conversation does not end with an assistant turn: there is no response to learn. */
  | 'no-response'
  /** The same conversation as an earlier record (only when duplicates are dropped). */
  | 'duplicate'
  /** The prompt fills the cutoff length: no response token is left to learn. */
  | 'truncated-away'
  /** The chat template failed on this conversation, or cannot be split into prompt and response. */
  | 'template';

export interface SkippedRow {
  source: SourceRef;
  /** 1-based column, for syntax errors. */
  column?: number;
  code: SkipCode;
  reason: string;
  /** For 'empty-field': which field, e.g. "output" or "conversations[].value". */
  field?: string;
}

/** "file:line" or "file:line:column": how every message names a row. */
export function where(row: { source: SourceRef; column?: number }): string {
  const { file, line } = row.source;
  return row.column === undefined ? `${file}:${line}` : `${file}:${line}:${row.column}`;
}
