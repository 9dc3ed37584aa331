import test from 'ava';
import { numel, tensorByteLength, tensorFromF32, tensorToF32, TensorError, type Tensor } from '@fedit/shared';

test('numel multiplies dimensions, with one element for a scalar and none for a zero dimension', (t) => {
  t.is(numel([]), 1);
  t.is(numel([2, 3, 4]), 24);
  t.is(numel([5, 0, 7]), 0);
});

test('numel rejects negative, fractional and non-numeric dimensions', (t) => {
  for (const shape of [[2, -1], [1.5], [Number.NaN], [2 ** 53]]) {
    t.throws(() => numel(shape), { instanceOf: TensorError, code: 'TENSOR_SHAPE' }, `[${shape.join(', ')}]`);
  }
});

test('numel rejects shapes whose element count exceeds 2^53', (t) => {
  t.throws(() => numel([2 ** 30, 2 ** 30, 2 ** 30]), { instanceOf: TensorError, code: 'TENSOR_SHAPE' });
});

test('tensorByteLength is numel times the dtype size', (t) => {
  t.is(tensorByteLength('BF16', [3, 4]), 24);
  t.is(tensorByteLength('F64', []), 8);
});

test('tensorFromF32 stores F32 values as little-endian bytes and copies them', (t) => {
  const values = new Float32Array([1, -2]);
  const tensor = tensorFromF32([2], values);
  t.is(tensor.dtype, 'F32');
  t.deepEqual([...tensor.data], [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]);
  values[0] = 42;
  t.deepEqual([...tensorToF32(tensor)], [1, -2]);
});

test('tensorFromF32 converts to F16 and BF16 when asked', (t) => {
  const values = new Float32Array([1, -2]);
  t.deepEqual([...tensorFromF32([2], values, 'F16').data], [0x00, 0x3c, 0x00, 0xc0]);
  t.deepEqual([...tensorFromF32([1, 2], values, 'BF16').data], [0x80, 0x3f, 0x00, 0xc0]);
});

test('tensorFromF32 copies the shape and rejects values that do not fill it', (t) => {
  const shape = [2, 2];
  const tensor = tensorFromF32(shape, new Float32Array(4));
  shape[0] = 9;
  t.deepEqual(tensor.shape, [2, 2]);
  t.throws(() => tensorFromF32([2, 2], new Float32Array(3)), {
    instanceOf: TensorError,
    message: /4 elements but 3 values/,
  });
});

test('tensorToF32 decodes F32, F16, BF16 and F64 data that starts at an odd byte offset', (t) => {
  const unaligned = (bytes: number[]): Uint8Array => new Uint8Array([0xee, ...bytes]).subarray(1);
  const cases: Array<[Tensor, number[]]> = [
    [{ dtype: 'F32', shape: [2], data: unaligned([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]) }, [1, -2]],
    [{ dtype: 'F16', shape: [2], data: unaligned([0x00, 0x3c, 0xff, 0x7b]) }, [1, 65504]],
    [{ dtype: 'BF16', shape: [1, 2], data: unaligned([0x80, 0x3f, 0x49, 0x40]) }, [1, 3.140625]],
    [{ dtype: 'F64', shape: [], data: unaligned([0, 0, 0, 0, 0, 0, 0xf0, 0x3f]) }, [1]],
  ];
  for (const [tensor, expected] of cases) t.deepEqual([...tensorToF32(tensor)], expected, tensor.dtype);
});

test('tensorToF32 returns a fresh, aligned array that does not alias the tensor', (t) => {
  const backing = new Uint8Array(9);
  const tensor: Tensor = { dtype: 'F32', shape: [2], data: backing.subarray(1) };
  const values = tensorToF32(tensor);
  t.is(values.byteOffset, 0);
  t.not(values.buffer, backing.buffer);
  values[0] = 5;
  t.deepEqual([...tensor.data], [0, 0, 0, 0, 0, 0, 0, 0]);
});

test('tensorToF32 rounds F64 values to the nearest float32', (t) => {
  const data = new Uint8Array(new Float64Array([0.1, 1e300]).buffer);
  t.deepEqual([...tensorToF32({ dtype: 'F64', shape: [2], data })], [Math.fround(0.1), Infinity]);
});

test('tensorToF32 rejects integer dtypes and data whose length disagrees with the shape', (t) => {
  t.throws(() => tensorToF32({ dtype: 'I32', shape: [1], data: new Uint8Array(4) }), {
    instanceOf: TensorError,
    code: 'TENSOR_DTYPE',
    message: /F32, F16, BF16 and F64 tensors, not I32/,
  });
  t.throws(() => tensorToF32({ dtype: 'F16', shape: [3], data: new Uint8Array(4) }), {
    instanceOf: TensorError,
    code: 'TENSOR_SIZE',
    message: /needs 6 bytes of data but has 4/,
  });
});
