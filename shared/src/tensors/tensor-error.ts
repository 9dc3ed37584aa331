import { FeditError } from '../errors.ts';

export type TensorErrorCode =
  /** A shape has a negative, fractional or absurdly large dimension. */
  | 'TENSOR_SHAPE'
  /** The data's byte length does not match dtype × shape. */
  | 'TENSOR_SIZE'
  /** The dtype is unknown, or not one the requested operation supports. */
  | 'TENSOR_DTYPE'
  /** A tensor name cannot be encoded as UTF-8 (it contains a lone surrogate). */
  | 'TENSOR_NAME'
  /** The host stores numbers big-endian; tensor bytes are little-endian and fedit does not swap. */
  | 'TENSOR_HOST_ENDIANNESS';

/** A tensor (or a collection of them) handed to fedit is internally inconsistent. */
export class TensorError extends FeditError {
  declare readonly code: TensorErrorCode;

  constructor(code: TensorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
