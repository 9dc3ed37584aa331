import { FeditError } from '@fedit/shared';

export type DatasetErrorCode =
  /** A dataset file is not JSON (an array of records) or JSON Lines at all; the message names file:line:column. */
  | 'DATASET_SYNTAX'
  /** A dataset file is not UTF-8 (UTF-16, or bytes that do not decode). */
  | 'DATASET_ENCODING'
  /** A dataset path names a folder, not a file. */
  | 'DATASET_NOT_A_FILE'
  /** A dataset file holds no records. */
  | 'DATASET_EMPTY'
  /** The records' format cannot be told from their fields, or the format asked for is unknown. */
  | 'DATASET_FORMAT'
  /** An option (cutoff length, batch size, split size, template) is out of range or inconsistent. */
  | 'DATASET_OPTIONS'
  /** The tokenizer lacks what the chosen template needs (an EOS token, a chat template). */
  | 'DATASET_TOKENIZER';

/** The dataset a participant brought, or the options to prepare it, cannot be used; the message says why. */
export class DatasetError extends FeditError {
  declare readonly code: DatasetErrorCode;

  constructor(code: DatasetErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
