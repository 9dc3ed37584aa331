import test from 'ava';
import { createHash } from 'node:crypto';
import {
  hashTensors,
  parseSafetensors,
  serializeSafetensors,
  tensorFromF32,
  TensorError,
  type Tensor,
} from '@fedit/shared';
import { rawSafetensors } from './helpers/raw-safetensors.ts';

const u64 = (n: number): Uint8Array => {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
  return bytes;
};
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const tensor = (dtype: Tensor['dtype'], shape: number[], bytes: number[]): Tensor => ({
  dtype,
  shape,
  data: Uint8Array.from(bytes),
});

const base = {
  'lora.B': tensor('F16', [2], [0x00, 0x3c, 0x00, 0xc0]),
  'lora.A': tensor('F32', [1, 1], [0, 0, 0x80, 0x3f]),
};

test('hashes the canonical encoding documented in hash.ts', (t) => {
  // Written out field by field from the spec, independently of the implementation.
  const pieces = [
    utf8('fedit-tensors-v1'),
    u64(2),
    ...[u64(6), utf8('lora.A'), u64(3), utf8('F32'), u64(2), u64(1), u64(1), u64(4), base['lora.A'].data],
    ...[u64(6), utf8('lora.B'), u64(3), utf8('F16'), u64(1), u64(2), u64(4), base['lora.B'].data],
  ];
  const expected = createHash('sha256');
  for (const piece of pieces) expected.update(piece);
  t.is(hashTensors(base), `sha256:${expected.digest('hex')}`);
});

test('orders tensors by the UTF-8 bytes of their names', (t) => {
  // U+E000 comes after U+10000 in UTF-16 code units but before it in UTF-8 bytes.
  const x = tensor('U8', [], [1]);
  const entry = (name: string) => [
    u64(utf8(name).length),
    utf8(name),
    u64(2),
    utf8('U8'),
    u64(0),
    u64(1),
    x.data,
  ];
  const expected = createHash('sha256');
  for (const piece of [utf8('fedit-tensors-v1'), u64(2), ...entry('\uE000'), ...entry('\u{10000}')])
    expected.update(piece);
  t.is(hashTensors({ '\u{10000}': x, '\uE000': x }), `sha256:${expected.digest('hex')}`);
});

test('the hash of no tensors is fixed', (t) => {
  const expected = createHash('sha256').update(utf8('fedit-tensors-v1')).update(u64(0)).digest('hex');
  t.is(hashTensors({}), `sha256:${expected}`);
  t.regex(hashTensors(new Map()), /^sha256:[0-9a-f]{64}$/);
});

test('the hash does not depend on insertion order or on Map versus object', (t) => {
  const reversed = new Map(Object.entries(base).reverse());
  t.is(hashTensors(reversed), hashTensors(base));
});

test('the hash does not depend on the file layout, padding or metadata the tensors came from', (t) => {
  const fromOurFile = parseSafetensors(serializeSafetensors(base, { round: '7' })).tensors;
  // The same tensors in a foreign layout: data in reverse name order, no header padding.
  const foreign = rawSafetensors(
    {
      'lora.B': { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      'lora.A': { dtype: 'F32', shape: [1, 1], data_offsets: [4, 8] },
    },
    Uint8Array.from([...base['lora.B'].data, ...base['lora.A'].data]),
  );
  const fromForeignFile = parseSafetensors(foreign).tensors;
  t.is(hashTensors(fromOurFile), hashTensors(base));
  t.is(hashTensors(fromForeignFile), hashTensors(base));
});

test('the hash changes when a name changes', (t) => {
  const renamed = new Map(
    Object.entries(base).map(([name, value]) => [name === 'lora.B' ? 'lora.b' : name, value]),
  );
  t.not(hashTensors(renamed), hashTensors(base));
});

test('the hash changes when only the dtype changes', (t) => {
  t.not(hashTensors({ ...base, 'lora.B': { ...base['lora.B'], dtype: 'BF16' } }), hashTensors(base));
});

test('the hash changes when only the shape changes', (t) => {
  const reshaped = { ...base, 'lora.A': { ...base['lora.A'], shape: [1] } };
  t.not(hashTensors(reshaped), hashTensors(base));
  const transposed = tensor('U8', [2, 3], [1, 2, 3, 4, 5, 6]);
  t.not(hashTensors({ x: transposed }), hashTensors({ x: { ...transposed, shape: [3, 2] } }));
});

test('the hash changes when any single data byte changes', (t) => {
  const original = hashTensors(base);
  for (const name of Object.keys(base) as Array<keyof typeof base>) {
    for (let i = 0; i < base[name].data.length; i++) {
      const data = base[name].data.slice();
      data[i] ^= 0x01;
      t.not(hashTensors({ ...base, [name]: { ...base[name], data } }), original, `${name} byte ${i}`);
    }
  }
});

test('the hash tells apart tensor sets whose bytes would concatenate identically', (t) => {
  // Without length prefixes, moving bytes across the name/data or tensor boundaries could collide.
  const a = { ab: tensor('U8', [1], [7]), c: tensor('U8', [0], []) };
  const b = { a: tensor('U8', [1], [7]), bc: tensor('U8', [0], []) };
  t.not(hashTensors(a), hashTensors(b));
  t.not(
    hashTensors({ x: tensor('U8', [2], [1, 2]) }),
    hashTensors({ x: tensor('U8', [1], [1]), y: tensor('U8', [1], [2]) }),
  );
});

test('the hash refuses tensors whose data disagree with their shape or whose names are not UTF-8', (t) => {
  t.throws(() => hashTensors({ w: tensor('F32', [2], [0, 0, 0, 0]) }), {
    instanceOf: TensorError,
    code: 'TENSOR_SIZE',
  });
  const one = tensorFromF32([], new Float32Array([1]));
  t.throws(() => hashTensors({ '\uDC00': one }), { instanceOf: TensorError, code: 'TENSOR_NAME' });
});
