import { DTYPES, dtypeByteSize, isDType, type DType, type FloatDType } from './dtype.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';
import { TensorError } from './tensor-error.ts';

/**
 * A dense tensor as it sits in a safetensors file: row-major, little-endian bytes. `data` may be
 * a view into a larger buffer at any byte offset, so code reading it must not assume the
 * alignment a Float32Array view would need; tensorToF32 copies instead.
 */
export interface Tensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** Number of elements of a shape; [] (a scalar) has one. Throws TensorError on an invalid dimension. */
export function numel(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new TensorError(
        'TENSOR_SHAPE',
        `shape [${shape.join(', ')}] has dimension ${dim}; dimensions must be non-negative integers`,
      );
    }
    count *= dim;
  }
  // Checked after the loop so a zero dimension anywhere still yields 0 rather than an overflow.
  if (!Number.isSafeInteger(count)) {
    throw new TensorError('TENSOR_SHAPE', `shape [${shape.join(', ')}] has more than 2^53 elements`);
  }
  return count;
}

/** Bytes a tensor of this dtype and shape occupies. */
export function tensorByteLength(dtype: DType, shape: readonly number[]): number {
  const bytes = numel(shape) * dtypeByteSize(dtype);
  if (!Number.isSafeInteger(bytes)) {
    throw new TensorError(
      'TENSOR_SHAPE',
      `a ${dtype} tensor of shape [${shape.join(', ')}] would exceed 2^53 bytes`,
    );
  }
  return bytes;
}

/**
 * Throws TensorError unless `tensor` has a known dtype, a valid shape and exactly the bytes that
 * dtype × shape call for. `name`, when given, only labels the message.
 */
export function assertValidTensor(tensor: Tensor, name?: string): void {
  const label = name === undefined ? 'tensor' : `tensor "${name}"`;
  if (!isDType(tensor.dtype)) {
    throw new TensorError(
      'TENSOR_DTYPE',
      `${label} has unknown dtype ${JSON.stringify(tensor.dtype)}; known dtypes: ${DTYPES.join(', ')}`,
    );
  }
  const expected = tensorByteLength(tensor.dtype, tensor.shape);
  if (tensor.data.byteLength !== expected) {
    throw new TensorError(
      'TENSOR_SIZE',
      `${label} (${tensor.dtype}, shape [${tensor.shape.join(', ')}]) needs ${expected} bytes of data but has ${tensor.data.byteLength}`,
    );
  }
}

/** Builds a tensor from Float32 values, converting (round-to-nearest-even) when dtype is F16 or BF16. */
export function tensorFromF32(
  shape: readonly number[],
  values: Float32Array,
  dtype: FloatDType = 'F32',
): Tensor {
  assertLittleEndianHost();
  if (numel(shape) !== values.length) {
    throw new TensorError(
      'TENSOR_SIZE',
      `shape [${shape.join(', ')}] holds ${numel(shape)} elements but ${values.length} values were given`,
    );
  }
  let data: Uint8Array;
  switch (dtype) {
    case 'F32':
      // Copied so later writes to `values` cannot change the tensor behind the caller's back.
      data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
      break;
    case 'F16':
      data = new Uint8Array(f32ToF16(values).buffer);
      break;
    case 'BF16':
      data = new Uint8Array(f32ToBf16(values).buffer);
      break;
    default:
      throw new TensorError(
        'TENSOR_DTYPE',
        `tensorFromF32 converts to F32, F16 or BF16, not ${String(dtype)}`,
      );
  }
  return { dtype, shape: [...shape], data };
}

/** Decodes a float tensor (F32, F16, BF16 or F64) into a fresh Float32Array that owns its buffer. */
export function tensorToF32(tensor: Tensor): Float32Array {
  assertLittleEndianHost();
  assertValidTensor(tensor);
  // Copies into a new ArrayBuffer starting at offset 0, which is aligned for any view. Not
  // data.slice(): on a Node Buffer (what readFile returns) slice is a view, not a copy.
  const bytes = new Uint8Array(tensor.data);
  switch (tensor.dtype) {
    case 'F32':
      return new Float32Array(bytes.buffer);
    case 'F16':
      return f16ToF32(new Uint16Array(bytes.buffer));
    case 'BF16':
      return bf16ToF32(new Uint16Array(bytes.buffer));
    case 'F64':
      // Constructing from another typed array rounds each double to nearest-even, as a C cast would.
      return new Float32Array(new Float64Array(bytes.buffer));
    default:
      throw new TensorError(
        'TENSOR_DTYPE',
        `tensorToF32 decodes F32, F16, BF16 and F64 tensors, not ${tensor.dtype}`,
      );
  }
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function assertLittleEndianHost(): void {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new TensorError(
      'TENSOR_HOST_ENDIANNESS',
      'this machine is big-endian; fedit reads tensor bytes as little-endian typed arrays and does not byte-swap',
    );
  }
}
