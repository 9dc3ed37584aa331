import { FeditError } from '../errors.ts';

export type RoundLogErrorCode =
  /** A value cannot be written in the canonical encoding (a float, undefined, a lone surrogate...). */
  | 'ROUND_RECORD_CANONICAL'
  /** A record lacks a field, has an unknown one, or a field has the wrong type or form. */
  | 'ROUND_RECORD_SHAPE'
  /** A line before the last one of a round log is not a canonical record: damage, not a crash. */
  | 'ROUND_LOG_CORRUPT'
  /** The log ends in a torn record (a crash mid-append) and repairing it was not asked for. */
  | 'ROUND_LOG_TORN'
  /** The log on disk does not verify (hash chain, order, federation); nothing is appended to it. */
  | 'ROUND_LOG_INVALID'
  /** The log was signed with a different coordinator key than the one given. */
  | 'ROUND_LOG_KEY'
  /** The log belongs to another federation than the one given. */
  | 'ROUND_LOG_FEDERATION'
  /** A record to append would make the log fail verification; it was not written. */
  | 'ROUND_LOG_REJECTED'
  /** The log was closed, or an earlier write failed and could not be undone. */
  | 'ROUND_LOG_CLOSED'
  /** A signed tree head lacks a field or a field has the wrong type or form (tree-head.ts). */
  | 'ROUND_TREE_HEAD'
  /** Participant selection was asked with invalid inputs (fraction, minimum, duplicate ids). */
  | 'ROUND_SELECTION';

/** A round record or round log is malformed, damaged or refused; the message says which and where. */
export class RoundLogError extends FeditError {
  declare readonly code: RoundLogErrorCode;

  constructor(code: RoundLogErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
