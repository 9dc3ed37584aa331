import { FeditError } from '../errors.ts';

export type SafetensorsErrorCode =
  /** The file ends before its 8-byte length prefix or before the header that prefix announces. */
  | 'SAFETENSORS_TRUNCATED'
  /** The header length exceeds the 100 MB cap the reference implementation also enforces. */
  | 'SAFETENSORS_HEADER_TOO_LARGE'
  /** The header is not UTF-8 JSON, not an object, or an entry's dtype/shape/data_offsets are malformed. */
  | 'SAFETENSORS_HEADER'
  /** `__metadata__` is not an object mapping strings to strings. */
  | 'SAFETENSORS_METADATA'
  /** A tensor's dtype is well-formed but not one fedit reads. */
  | 'SAFETENSORS_DTYPE'
  /** A tensor's byte span does not equal numel(shape) × dtype size. */
  | 'SAFETENSORS_SIZE'
  /** A tensor's span is reversed or reaches past the end of the data section. */
  | 'SAFETENSORS_OFFSETS'
  /** Two tensors share bytes of the data section. */
  | 'SAFETENSORS_OVERLAP'
  /** Part of the data section (between tensors or after the last) belongs to no tensor. */
  | 'SAFETENSORS_GAP';

/** A safetensors file (or buffer) is malformed; the message names the source and the tensor. */
export class SafetensorsError extends FeditError {
  declare readonly code: SafetensorsErrorCode;

  constructor(code: SafetensorsErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
