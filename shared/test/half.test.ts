import test from 'ava';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '@fedit/shared';

const f32FromBits = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];
const toF16 = (value: number): number => f32ToF16(new Float32Array([value]))[0];
const fromF16 = (bits: number): number => f16ToF32(new Uint16Array([bits]))[0];
const toBf16 = (value: number): number => f32ToBf16(new Float32Array([value]))[0];
const fromBf16 = (bits: number): number => bf16ToF32(new Uint16Array([bits]))[0];
const allSixteenBitPatterns = (): Uint16Array => Uint16Array.from({ length: 0x10000 }, (_, i) => i);
const isF16NaN = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

// [value, f16 bits] pairs from the IEEE 754 binary16 definition (and e.g. Wikipedia's table).
const F16_VECTORS: Array<[number, number]> = [
  [1, 0x3c00],
  [-2, 0xc000],
  [0.5, 0x3800],
  [65504, 0x7bff], // largest finite half
  [2 ** -14, 0x0400], // smallest normal
  [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
  [2 ** -24, 0x0001], // smallest subnormal
  [0, 0x0000],
  [-0, 0x8000],
  [Infinity, 0x7c00],
  [-Infinity, 0xfc00],
];

test('f16 conversions match known bit patterns in both directions', (t) => {
  for (const [value, bits] of F16_VECTORS) {
    t.is(toF16(value), bits, `f32ToF16(${value})`);
    t.true(Object.is(fromF16(bits), value), `f16ToF32(0x${bits.toString(16)})`);
  }
});

test('f32ToF16 rounds to the nearest half', (t) => {
  t.is(toF16(f32FromBits(0x3dcccccd)), 0x2e66); // 0.1
  t.is(toF16(1 / 3), 0x3555);
  t.is(toF16(Math.PI), 0x4248);
  t.is(toF16(65519), 0x7bff); // below the midpoint to the next (unrepresentable) step
  t.is(toF16(65520), 0x7c00); // the midpoint ties away from odd 0x7bff, i.e. to Infinity
  t.is(toF16(1e6), 0x7c00);
  t.is(toF16(-1e6), 0xfc00);
});

test('f32ToF16 rounds values below the smallest subnormal to zero or 2^-24 by nearest-even', (t) => {
  t.is(toF16(2 ** -25), 0x0000); // tie between 0 and 2^-24: 0 is even
  t.is(toF16(f32FromBits(0x33000001)), 0x0001); // just above 2^-25
  t.is(toF16(-(2 ** -26)), 0x8000);
  t.is(toF16(1.5 * 2 ** -24), 0x0002); // tie between 1 and 2 subnormal steps: 2 is even
  t.is(toF16(2.5 * 2 ** -24), 0x0002); // tie between 2 and 3: 2 is even
  t.is(toF16(f32FromBits(1)), 0x0000); // a float32 subnormal
});

test('f32ToF16 breaks every tie between adjacent halves toward the even one', (t) => {
  // Midpoints of adjacent halves need 12 significant bits, so they are exact in float32; one
  // float32 ulp either side must round to the nearer neighbour.
  const halves = f16ToF32(allSixteenBitPatterns());
  let failures = 0;
  for (let h = 0; h < 0x7bff; h++) {
    const mid = new Float32Array([(halves[h] + halves[h + 1]) / 2]);
    const midBits = new Uint32Array(mid.buffer)[0];
    const even = h % 2 === 0 ? h : h + 1;
    if (toF16(mid[0]) !== even) failures++;
    if (toF16(f32FromBits(midBits - 1)) !== h) failures++;
    if (toF16(f32FromBits(midBits + 1)) !== h + 1) failures++;
  }
  t.is(failures, 0);
});

test('every non-NaN half survives f16 -> f32 -> f16 unchanged, and NaNs stay NaN', (t) => {
  const bits = allSixteenBitPatterns();
  const back = f32ToF16(f16ToF32(bits));
  let failures = 0;
  for (let h = 0; h < bits.length; h++) {
    if (isF16NaN(h) ? !isF16NaN(back[h]) : back[h] !== h) failures++;
  }
  t.is(failures, 0);
});

test('f32ToF16 keeps NaN a NaN even when its payload sits only in the dropped low bits', (t) => {
  t.true(isF16NaN(toF16(NaN)));
  t.true(isF16NaN(toF16(f32FromBits(0x7f800001))));
  t.true(isF16NaN(toF16(f32FromBits(0xff800001))));
  t.true(Number.isNaN(fromF16(0x7e00)));
});

test('bf16 conversions match known bit patterns in both directions', (t) => {
  const vectors: Array<[number, number]> = [
    [1, 0x3f80],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [f32FromBits(0x7f7f0000), 0x7f7f], // largest finite bfloat16
    [2 ** -133, 0x0001], // smallest subnormal bfloat16
  ];
  for (const [value, bits] of vectors) {
    t.is(toBf16(value), bits, `f32ToBf16(${value})`);
    t.true(Object.is(fromBf16(bits), value), `bf16ToF32(0x${bits.toString(16)})`);
  }
  t.is(toBf16(Math.PI), 0x4049);
});

test('f32ToBf16 rounds to nearest, ties to even, and overflows to Infinity', (t) => {
  t.is(toBf16(f32FromBits(0x3f808000)), 0x3f80); // tie, 0x3f80 is even
  t.is(toBf16(f32FromBits(0x3f818000)), 0x3f82); // tie, 0x3f82 is even
  t.is(toBf16(f32FromBits(0x3f807fff)), 0x3f80);
  t.is(toBf16(f32FromBits(0x3f808001)), 0x3f81);
  t.is(toBf16(f32FromBits(0x7f7fffff)), 0x7f80); // float32 max rounds past the largest bfloat16
  t.is(toBf16(f32FromBits(0xff7fffff)), 0xff80);
});

test('f32ToBf16 keeps NaN a NaN, including payloads only in the dropped low bits', (t) => {
  const isBf16NaN = (h: number): boolean => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
  t.true(isBf16NaN(toBf16(NaN)));
  t.true(isBf16NaN(toBf16(f32FromBits(0x7f800001))));
  t.true(isBf16NaN(toBf16(f32FromBits(0xffc00000))));
});

test('every bfloat16 survives bf16 -> f32 -> bf16 unchanged', (t) => {
  const bits = allSixteenBitPatterns();
  const back = f32ToBf16(bf16ToF32(bits));
  const isNaN = (h: number): boolean => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
  let failures = 0;
  for (let h = 0; h < bits.length; h++) {
    if (isNaN(h) ? !isNaN(back[h]) : back[h] !== h) failures++;
  }
  t.is(failures, 0);
});

test('conversions read a Float32Array view at a non-zero offset', (t) => {
  const backing = new Float32Array([99, 1, -2, 99]);
  const view = backing.subarray(1, 3);
  t.deepEqual([...f32ToF16(view)], [0x3c00, 0xc000]);
  t.deepEqual([...f32ToBf16(view)], [0x3f80, 0xc000]);
});

/** Nearest value in `sorted` (ascending, finite, non-negative) to x ≥ 0, ties to the even index. */
function nearestIndex(sorted: Float32Array, x: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= x) lo = mid;
    else hi = mid;
  }
  const below = x - sorted[lo];
  const above = sorted[hi] - x;
  if (below !== above) return below < above ? lo : hi;
  return lo % 2 === 0 ? lo : hi;
}

test('f32ToF16 agrees with a brute-force nearest-even search on random floats', (t) => {
  // Finite non-negative halves, 0x0000..0x7bff, plus 65536 standing in for the first step past
  // the largest half, which IEEE rounding treats as Infinity.
  const grid = new Float32Array(0x7c01);
  grid.set(f16ToF32(Uint16Array.from({ length: 0x7c00 }, (_, i) => i)));
  grid[0x7c00] = 65536;
  // Exponents from 2^-27 to 2^16 cover zero-rounding, subnormal, normal and overflowing halves.
  const random = new Uint32Array(200_000).map(() => {
    const sign = Math.random() < 0.5 ? 0x80000000 : 0;
    const exponent = 127 - 27 + Math.floor(Math.random() * 44);
    return (sign | (exponent << 23) | Math.floor(Math.random() * 0x800000)) >>> 0;
  });
  const values = new Float32Array(random.buffer);
  const got = f32ToF16(values);
  let failures = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (Number.isNaN(x)) continue;
    const sign = random[i] >= 0x80000000 ? 0x8000 : 0;
    const expected = sign | (Math.abs(x) >= 65536 ? 0x7c00 : nearestIndex(grid, Math.abs(x)));
    if (got[i] !== expected) failures++;
  }
  t.is(failures, 0);
});
