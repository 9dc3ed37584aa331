// Exact conversions between Float32 and the two 16-bit float formats, on raw bit patterns, so
// results do not depend on Math.f16round (absent before Node 24) and rounding is IEEE 754
// round-to-nearest-even, the same as PyTorch's `.half()` / `.bfloat16()` casts. Both directions
// work on typed arrays in host byte order; callers holding little-endian file bytes go through
// tensor.ts, which checks the host is little-endian.

/** IEEE 754 binary16 bits → Float32. Exact (every half value is a float value); NaN payloads kept. */
export function f16ToF32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = halfToFloatBits(halves[i]);
  return out;
}

/** Float32 → IEEE 754 binary16 bits, rounding to nearest, ties to even; overflow becomes ±Infinity. */
export function f32ToF16(floats: Float32Array): Uint16Array {
  const out = new Uint16Array(floats.length);
  const bits = new Uint32Array(floats.buffer, floats.byteOffset, floats.length);
  for (let i = 0; i < out.length; i++) out[i] = floatBitsToHalf(bits[i]);
  return out;
}

/** bfloat16 bits → Float32. Exact: bfloat16 is the top half of a float32. */
export function bf16ToF32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  return out;
}

/** Float32 → bfloat16 bits, rounding to nearest, ties to even; NaN stays a (quiet) NaN. */
export function f32ToBf16(floats: Float32Array): Uint16Array {
  const out = new Uint16Array(floats.length);
  const bits = new Uint32Array(floats.buffer, floats.byteOffset, floats.length);
  for (let i = 0; i < out.length; i++) out[i] = floatBitsToBf16(bits[i]);
  return out;
}

function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: every one is a normal float, so shift the leading 1 into the implicit bit.
  let e = 1 - 15;
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return (sign | ((e + 127) << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

function floatBitsToHalf(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exponent = (f >>> 23) & 0xff;
  const mantissa = f & 0x7fffff;
  if (exponent === 0xff) {
    // Setting the quiet bit keeps a NaN a NaN even when its payload sits only in the 13 low bits
    // that are cut off.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Below 2^-25 everything rounds to zero (2^-25 itself is a tie and 0 is even).
    if (halfExponent < -10) return sign;
    // The result is a half subnormal: mantissa * 2^-24 with the implicit bit made explicit.
    return sign | roundShift(mantissa | 0x800000, 14 - halfExponent);
  }
  // A carry out of the mantissa correctly bumps the exponent, up to Infinity (0x7c00).
  return sign | ((halfExponent << 10) + roundShift(mantissa, 13));
}

/** value >> shift, rounded to nearest, ties to even. */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

function floatBitsToBf16(f: number): number {
  if ((f & 0x7fffffff) >>> 0 > 0x7f800000) return ((f >>> 16) | 0x0040) & 0xffff;
  // Adding 0x7fff plus the lowest kept bit rounds ties to even; the sum stays below 2^32 for
  // every non-NaN input, and a carry into the exponent correctly reaches Infinity.
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}
