// t-of-n Shamir secret sharing (Shamir 1979) of 32-byte seeds over GF(p), p = 2^521 − 1 (the
// Mersenne prime M521, so every 256-bit secret is a field element and no reduction loses bits):
//
//   secret      s = the 32 bytes read as a big-endian integer (< 2^256 < p)
//   polynomial  f(x) = s + a_1·x + ... + a_(t−1)·x^(t−1) mod p, each a_j uniform in [0, p):
//               66 bytes from crypto.randomBytes, the top byte masked to its low bit (a value below
//               2^521), redrawn while the value equals p (rejection sampling, so no bias)
//   shares      (x, f(x)) for x = 1..n; encoded as 68 bytes: u16be(x) || f(x) as 66 bytes big-endian
//   reconstruct Lagrange interpolation at 0 from any t shares with distinct x in 1..n:
//               s = Σ_i y_i · Π_(j≠i) x_j / (x_j − x_i) mod p; the secret is refused if the
//               result is 2^256 or more (what t−1 shares, or a share replaced by a random value, give
//               with probability 1 − 2^−265; a chosen offset is not caught: that needs a commitment)
//
// Python (for the test vectors): f = lambda x: sum(a * x**j for j, a in enumerate(coeffs)) % p.
// Why our own rather than a library: the auditor re-derives shares from the log in another
// language, and this is short enough to state whole; bigint arithmetic is exact by construction.

import { randomBytes } from 'node:crypto';
import { SecAggError } from './secagg-error.ts';
import { checkBytes, SEED_BYTES } from './prg.ts';

/** The field's prime, 2^521 − 1. */
export const SHAMIR_PRIME = 2n ** 521n - 1n;
/** Bytes of a field element as shares encode it. */
export const FIELD_BYTES = 66;
/** Bytes of an encoded share: u16be(x) and the 66-byte value. */
export const SHARE_BYTES = 2 + FIELD_BYTES;
/** The most shares one secret may be split into (evaluation points 1..MAX_SHARES). */
export const MAX_SHARES = 65535;

/** One share: the evaluation point x (1..n) and f(x). */
export interface Share {
  x: number;
  y: bigint;
}

function bytesToBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function bigintToBytes(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = value;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function mod(a: bigint): bigint {
  const r = a % SHAMIR_PRIME;
  return r < 0n ? r + SHAMIR_PRIME : r;
}

/** a^(−1) mod p by the extended Euclidean algorithm (a ≠ 0 mod p). */
function inverse(a: bigint): bigint {
  let [r0, r1] = [mod(a), SHAMIR_PRIME];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0);
}

/** A uniform field element from crypto.randomBytes, by rejection sampling. */
export function randomFieldElement(): bigint {
  for (;;) {
    const bytes = randomBytes(FIELD_BYTES);
    bytes[0] &= 0x01;
    const v = bytesToBigint(bytes);
    if (v < SHAMIR_PRIME) return v;
  }
}

function checkThreshold(threshold: number, count: number): void {
  if (!Number.isInteger(count) || count < 2 || count > MAX_SHARES) {
    throw new SecAggError('SECAGG_INPUT', `count must be an integer from 2 to ${MAX_SHARES}`);
  }
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > count) {
    throw new SecAggError('SECAGG_INPUT', `threshold must be an integer from 2 to count (${count})`);
  }
}

/** f(1..count) for f with the given coefficients (coefficients[0] is the secret), Horner's rule. */
export function evaluateShares(coefficients: readonly bigint[], count: number): Share[] {
  checkThreshold(coefficients.length, count);
  coefficients.forEach((c, j) => {
    if (typeof c !== 'bigint' || c < 0n || c >= SHAMIR_PRIME) {
      throw new SecAggError('SECAGG_INPUT', `coefficients[${j}] must be a bigint in [0, p)`);
    }
  });
  const shares: Share[] = [];
  for (let x = 1; x <= count; x++) {
    let y = 0n;
    for (let j = coefficients.length - 1; j >= 0; j--) y = (y * BigInt(x) + coefficients[j]) % SHAMIR_PRIME;
    shares.push({ x, y });
  }
  return shares;
}

/** Splits a 32-byte secret into `count` shares, any `threshold` of which reconstruct it. */
export function splitSecret(secret: Uint8Array, threshold: number, count: number): Share[] {
  checkBytes(secret, SEED_BYTES, 'secret');
  checkThreshold(threshold, count);
  const coefficients = [bytesToBigint(secret)];
  for (let j = 1; j < threshold; j++) coefficients.push(randomFieldElement());
  return evaluateShares(coefficients, count);
}

/** f(0) from the shares; throws SecAggError for too few, duplicate or out-of-range shares. */
export function interpolateAtZero(shares: readonly Share[], threshold: number): bigint {
  if (!Array.isArray(shares) || shares.length < threshold || !Number.isInteger(threshold) || threshold < 2) {
    throw new SecAggError(
      'SECAGG_SHARES',
      `need at least threshold (${threshold}) shares, got ${shares?.length}`,
    );
  }
  const seen = new Set<number>();
  for (const [i, s] of shares.entries()) {
    if (!Number.isInteger(s.x) || s.x < 1 || s.x > MAX_SHARES) {
      throw new SecAggError('SECAGG_SHARES', `shares[${i}].x must be an integer from 1 to ${MAX_SHARES}`);
    }
    if (typeof s.y !== 'bigint' || s.y < 0n || s.y >= SHAMIR_PRIME) {
      throw new SecAggError('SECAGG_SHARES', `shares[${i}].y must be a bigint in [0, p)`);
    }
    if (seen.has(s.x)) throw new SecAggError('SECAGG_SHARES', `shares[${i}] repeats x = ${s.x}`);
    seen.add(s.x);
  }
  let secret = 0n;
  for (const si of shares) {
    let num = 1n;
    let den = 1n;
    for (const sj of shares) {
      if (sj === si) continue;
      num = (num * BigInt(sj.x)) % SHAMIR_PRIME;
      den = mod(den * BigInt(sj.x - si.x));
    }
    secret = (secret + si.y * num * inverse(den)) % SHAMIR_PRIME;
  }
  return secret;
}

/** The 32-byte secret the shares reconstruct; refused when f(0) is not below 2^256. */
export function reconstructSecret(shares: readonly Share[], threshold: number): Uint8Array {
  const value = interpolateAtZero(shares, threshold);
  if (value >= 2n ** 256n) {
    throw new SecAggError(
      'SECAGG_SHARES',
      'shares do not reconstruct a 32-byte secret (too few or corrupted)',
    );
  }
  return bigintToBytes(value, SEED_BYTES);
}

/** The 68-byte encoding of a share. */
export function encodeShare(share: Share): Uint8Array {
  if (!Number.isInteger(share.x) || share.x < 1 || share.x > MAX_SHARES) {
    throw new SecAggError('SECAGG_INPUT', `share.x must be an integer from 1 to ${MAX_SHARES}`);
  }
  if (typeof share.y !== 'bigint' || share.y < 0n || share.y >= SHAMIR_PRIME) {
    throw new SecAggError('SECAGG_INPUT', 'share.y must be a bigint in [0, p)');
  }
  const out = new Uint8Array(SHARE_BYTES);
  out[0] = share.x >> 8;
  out[1] = share.x & 0xff;
  out.set(bigintToBytes(share.y, FIELD_BYTES), 2);
  return out;
}

/** Decodes a 68-byte share, refusing x = 0 and y >= p. */
export function decodeShare(bytes: Uint8Array): Share {
  checkBytes(bytes, SHARE_BYTES, 'share');
  const x = (bytes[0] << 8) | bytes[1];
  const y = bytesToBigint(bytes.subarray(2));
  if (x < 1) throw new SecAggError('SECAGG_INPUT', 'share.x must be at least 1');
  if (y >= SHAMIR_PRIME) throw new SecAggError('SECAGG_INPUT', 'share.y must be below p');
  return { x, y };
}
