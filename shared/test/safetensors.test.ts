import test from 'ava';
import {
  parseSafetensors,
  parseSafetensorsHeader,
  serializeSafetensors,
  SafetensorsError,
  tensorFromF32,
  tensorToF32,
  TensorError,
  type Tensor,
} from '@fedit/shared';
import { f32Bytes, rawSafetensors } from './helpers/raw-safetensors.ts';

// Byte-exact outputs of the reference implementation, copied from the unit tests in
// huggingface/safetensors safetensors/src/tensor.rs (test_serialization, test_empty) at commit
// 24b0b2857fef49be734b9ab72ce97c09bb25f5b9.
const REFERENCE_ATTN = Uint8Array.from([
  64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34,
  58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97,
  116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0,
  128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
]);
const REFERENCE_EMPTY = Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
const REFERENCE_EMPTY_WITH_METADATA = Uint8Array.from([
  40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102,
  114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
]);

const headerText = (bytes: Uint8Array): string => {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(bytes.subarray(8, 8 + length));
};

test('parses a file written by the reference implementation', (t) => {
  const { metadata, tensors } = parseSafetensors(REFERENCE_ATTN);
  t.deepEqual(metadata, {});
  t.deepEqual([...tensors.keys()], ['attn.0']);
  const tensor = tensors.get('attn.0')!;
  t.is(tensor.dtype, 'F32');
  t.deepEqual(tensor.shape, [1, 2, 3]);
  t.deepEqual([...tensorToF32(tensor)], [0, 1, 2, 3, 4, 5]);
  t.deepEqual(parseSafetensors(REFERENCE_EMPTY_WITH_METADATA), {
    metadata: { framework: 'pt' },
    tensors: new Map(),
  });
});

test('serializes to exactly the bytes the reference implementation writes', (t) => {
  const attn = tensorFromF32([1, 2, 3], new Float32Array([0, 1, 2, 3, 4, 5]));
  t.deepEqual(serializeSafetensors({ 'attn.0': attn }), REFERENCE_ATTN);
  t.deepEqual(serializeSafetensors(new Map()), REFERENCE_EMPTY);
  t.deepEqual(serializeSafetensors({}, { framework: 'pt' }), REFERENCE_EMPTY_WITH_METADATA);
});

test('round-trips F32, F16 and BF16 tensors, an empty tensor, a scalar and metadata', (t) => {
  const values = new Float32Array([0.5, -1.25, 3, 65504, -0, 1e-3]);
  const tensors = new Map<string, Tensor>([
    ['w.f32', tensorFromF32([2, 3], values)],
    ['w.f16', tensorFromF32([3, 2], values, 'F16')],
    ['w.bf16', tensorFromF32([6], values, 'BF16')],
    ['empty', tensorFromF32([0, 4], new Float32Array(0), 'F16')],
    ['scalar', tensorFromF32([], new Float32Array([7]))],
  ]);
  const metadata = { format: 'pt', 'fedit.round': '3' };
  const parsed = parseSafetensors(serializeSafetensors(tensors, metadata));
  t.deepEqual(parsed.metadata, metadata);
  t.deepEqual([...parsed.tensors.keys()], ['empty', 'scalar', 'w.bf16', 'w.f16', 'w.f32']);
  for (const [name, original] of tensors) {
    const copy = parsed.tensors.get(name)!;
    t.is(copy.dtype, original.dtype, name);
    t.deepEqual(copy.shape, original.shape, name);
    t.deepEqual([...copy.data], [...original.data], name);
  }
  t.deepEqual([...tensorToF32(parsed.tensors.get('w.f32')!)], [...values]);
});

test('parsed tensor data are views into the input bytes, not copies', (t) => {
  const bytes = serializeSafetensors({ a: tensorFromF32([2], new Float32Array([1, 2])) });
  const tensor = parseSafetensors(bytes).tensors.get('a')!;
  t.is(tensor.data.buffer, bytes.buffer);
  bytes[bytes.length - 1] = 0;
  t.is(tensorToF32(tensor)[1], 0);
});

test('parses tensors whose data start at an unaligned offset', (t) => {
  // One U8 tensor first puts the F32 tensor after it at an odd offset, as the reference allows.
  const file = rawSafetensors(
    {
      mask: { dtype: 'U8', shape: [1], data_offsets: [0, 1] },
      w: { dtype: 'F32', shape: [1], data_offsets: [1, 5] },
    },
    Uint8Array.from([1, ...f32Bytes(2.5)]),
  );
  t.deepEqual([...tensorToF32(parseSafetensors(file).tensors.get('w')!)], [2.5]);
});

test('accepts header entries listed in any order and reports tensors in data order', (t) => {
  // The reference writes the widest dtypes first, so data order and name order differ.
  const file = rawSafetensors(
    {
      b_f16: { dtype: 'F16', shape: [1], data_offsets: [8, 10] },
      a_f64: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
      c_bool: { dtype: 'BOOL', shape: [2], data_offsets: [10, 12] },
    },
    12,
    { pad: 8 },
  );
  const header = parseSafetensorsHeader(file);
  t.deepEqual([...header.tensors.keys()], ['a_f64', 'b_f16', 'c_bool']);
  t.deepEqual(header.tensors.get('b_f16'), { name: 'b_f16', dtype: 'F16', shape: [1], dataOffsets: [8, 10] });
  t.is(header.dataStart, file.byteLength - 12);
  t.is(header.dataByteLength, 12);
});

test('reads checkpoints carrying integer and boolean tensors', (t) => {
  const file = rawSafetensors(
    {
      position_ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
      lengths: { dtype: 'I32', shape: [1], data_offsets: [16, 20] },
      mask: { dtype: 'BOOL', shape: [3], data_offsets: [20, 23] },
    },
    23,
  );
  const { tensors } = parseSafetensors(file);
  t.deepEqual(
    [...tensors].map(([name, tensor]) => [name, tensor.dtype, tensor.data.byteLength]),
    [
      ['position_ids', 'I64', 16],
      ['lengths', 'I32', 4],
      ['mask', 'BOOL', 3],
    ],
  );
});

test('serialization is deterministic whatever order the tensors are given in', (t) => {
  const a = tensorFromF32([1], new Float32Array([1]));
  const b = tensorFromF32([2], new Float32Array([2, 3]), 'BF16');
  const forward = serializeSafetensors(
    new Map([
      ['a', a],
      ['b', b],
    ]),
    { x: '1', y: '2' },
  );
  const backward = serializeSafetensors({ b, a }, { y: '2', x: '1' });
  t.deepEqual(forward, backward);
});

test('serialization lays tensors out contiguously in name order behind a space-padded header', (t) => {
  const one = (value: number): Tensor => tensorFromF32([1], new Float32Array([value]));
  const bytes = serializeSafetensors({ b: one(2), '10': one(10), a: one(1), '9': one(9) });
  const text = headerText(bytes);
  t.is(text.length % 8, 0);
  t.is(
    text.trimEnd(),
    '{"10":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"9":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},' +
      '"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}',
  );
  t.deepEqual([...new Float32Array(bytes.slice(bytes.length - 16).buffer)], [10, 9, 1, 2]);
});

test('serialization orders names by UTF-8 bytes, not UTF-16 code units', (t) => {
  // U+E000 sorts after U+10000 in UTF-16 (0xE000 > 0xD800) but before it in UTF-8 and in Rust.
  const one = tensorFromF32([], new Float32Array([1]));
  const text = headerText(serializeSafetensors({ '\u{10000}': one, '\uE000': one }));
  t.true(text.indexOf('\uE000') < text.indexOf('\u{10000}'));
});

test('serialization refuses tensors that would make an invalid file', (t) => {
  const good = tensorFromF32([1], new Float32Array([1]));
  t.throws(() => serializeSafetensors({ __metadata__: good }), {
    instanceOf: SafetensorsError,
    code: 'SAFETENSORS_HEADER',
  });
  t.throws(() => serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Uint8Array(4) } }), {
    instanceOf: TensorError,
    code: 'TENSOR_SIZE',
    message: /tensor "w"/,
  });
  t.throws(() => serializeSafetensors({ w: { dtype: 'F8' as never, shape: [1], data: new Uint8Array(1) } }), {
    instanceOf: TensorError,
    code: 'TENSOR_DTYPE',
  });
  t.throws(() => serializeSafetensors({ '\uD800': good }), { instanceOf: TensorError, code: 'TENSOR_NAME' });
  t.throws(() => serializeSafetensors({ w: good }, { epoch: 3 as never }), {
    instanceOf: SafetensorsError,
    code: 'SAFETENSORS_METADATA',
    message: /"epoch" must be a string/,
  });
});
