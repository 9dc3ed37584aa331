// The element types fedit can read from a safetensors file. fedit itself only produces F32, F16
// and BF16; the others are accepted so real checkpoints (which carry I64 position ids, U8 masks,
// F64 buffers, ...) parse instead of failing on a tensor fedit never touches.
export const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'U8', 'BOOL'] as const;

export type DType = (typeof DTYPES)[number];

/** The element types fedit converts to and from Float32: the only ones an update may carry. */
export const FLOAT_DTYPES = ['F32', 'F16', 'BF16'] as const;

export type FloatDType = (typeof FLOAT_DTYPES)[number];

const BYTE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  U8: 1,
  BOOL: 1,
};

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(BYTE_SIZE, value);
}

/** Bytes per element. */
export function dtypeByteSize(dtype: DType): number {
  return BYTE_SIZE[dtype];
}
