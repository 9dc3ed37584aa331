// SHA-256 and the binary canonical encoding (fedit-bin-v1) that every signed wire digest uses.
import test from 'ava';
import {
  binaryCanonical,
  binaryCanonicalDigest,
  CryptoError,
  sha256,
  sha256Hash,
  toHex,
} from '@fedit/shared';

const hex = (bytes: Uint8Array) => toHex(bytes);

test('sha256 matches the FIPS 180-2 "abc" vector, and hashes parts as their concatenation', (t) => {
  const abc = new TextEncoder().encode('abc');
  t.is(hex(sha256(abc)), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  t.deepEqual(sha256(abc.subarray(0, 1), abc.subarray(1)), sha256(abc));
  t.is(sha256Hash(abc), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  t.is(sha256(abc).constructor, Uint8Array);
});

test('encodes every kind of value with the documented byte layout', (t) => {
  t.is(hex(binaryCanonical(null)), '00');
  t.is(hex(binaryCanonical(false)), '01');
  t.is(hex(binaryCanonical(true)), '02');
  t.is(hex(binaryCanonical(1)), '030100000000000000');
  t.is(hex(binaryCanonical(-1)), '03ffffffffffffffff');
  t.is(hex(binaryCanonical('é')), '0402000000c3a9');
  t.is(hex(binaryCanonical(Uint8Array.of(0xab))), '0501000000ab');
  t.is(hex(binaryCanonical([true, null])), '06020000000200');
  t.is(
    hex(binaryCanonical({ b: 1, a: true })),
    '0702000000' + '0100000061' + '02' + '0100000062' + '030100000000000000',
  );
});

test('the encoding ignores key order and leaves out undefined properties', (t) => {
  const a = binaryCanonical({ x: 1, y: [1, 2], z: { q: 'v', p: Uint8Array.of(1) } });
  const b = binaryCanonical({ z: { p: Uint8Array.of(1), q: 'v' }, y: [1, 2], x: 1, w: undefined });
  t.deepEqual(a, b);
  t.deepEqual(binaryCanonicalDigest({ x: 1, w: undefined }), binaryCanonicalDigest({ x: 1 }));
});

test('keys sort by UTF-8 bytes, not by UTF-16 code units', (t) => {
  // In UTF-16, U+1F600 (D83D DE00) sorts before U+FF61; in UTF-8 (F0 9F 98 80 vs EF BD A1), after.
  const encoded = binaryCanonical({ '\u{1F600}': 1, '\uFF61': 2 });
  const first = Buffer.from(encoded.subarray(5 + 4, 5 + 4 + 3)).toString('utf8');
  t.is(first, '\uFF61'); // EF BD A1 < F0 9F 98 80
});

test('values that differ only in type encode differently', (t) => {
  const encodings = [
    binaryCanonical('1'),
    binaryCanonical(1),
    binaryCanonical(new TextEncoder().encode('1')),
    binaryCanonical(['1']),
  ];
  const distinct = new Set(encodings.map(hex));
  t.is(distinct.size, encodings.length);
  // Lengths are prefixed, so concatenations cannot collide.
  t.notDeepEqual(binaryCanonical(['ab', 'c']), binaryCanonical(['a', 'bc']));
});

test('refuses floats, non-finite numbers and unsafe integers, naming the path', (t) => {
  for (const bad of [0.5, Number.NaN, Infinity, 2 ** 53]) {
    const error = t.throws(() => binaryCanonical({ round: { lr: bad } }), { instanceOf: CryptoError });
    t.is(error.code, 'CRYPTO_CANONICAL');
    t.is(error.field, 'value.round.lr');
    t.regex(error.message, /value\.round\.lr/);
  }
});

test('refuses lone surrogates, holes, class instances and other types', (t) => {
  const cases: [unknown, string][] = [
    [{ name: 'a\uD800' }, 'value.name'],
    [{ ['\uDC00']: 1 }, 'value.\uDC00'],
    [[1, undefined], 'value[1]'],
    [{ when: new Date(0) }, 'value.when'],
    [{ map: new Map() }, 'value.map'],
    [{ tensor: new Float32Array(2) }, 'value.tensor'],
    [{ big: 1n }, 'value.big'],
  ];
  for (const [value, field] of cases) {
    const error = t.throws(() => binaryCanonical(value as never), { instanceOf: CryptoError });
    t.is(error.code, 'CRYPTO_CANONICAL');
    t.is(error.field, field);
  }
});

test('refuses nesting deeper than 32 levels instead of overflowing the stack', (t) => {
  let value: unknown = 1;
  for (let i = 0; i < 40; i++) value = [value];
  t.throws(() => binaryCanonical(value as never), { code: 'CRYPTO_CANONICAL' });
});
