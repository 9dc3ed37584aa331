// Client-level DP-FedAvg (McMahan, Ramage, Talwar, Zhang 2018, "Learning Differentially Private
// Recurrent Language Models"): each participant's update is clipped to L2 norm C, and the sum of
// the clipped updates carries Gaussian noise N(0, sigma^2 C^2) per coordinate, sigma the noise
// multiplier the accountant (accountant.ts) composes. Arithmetic fixed so the audit recomputes it:
//
// Clipping, for an update given as tensors in a fixed order (the caller passes schema order):
//   n = sqrt(sum of float64(x)^2)      binary64, tensors in order, elements in index order,
//                                      sequential, no fused multiply-add
//   s = C / n when n > C, else 1        binary64
//   y[i] = float32(float64(x[i]) * s)   one rounding per element
// (y's norm can exceed C by float32 rounding, at most by a relative 2^-24 per element.)
//
// Noise, from a 32-byte seed revealed to the audit after the round:
//   keystream  AES-256-CTR, key = seed, initial counter block = 16 zero bytes (big-endian
//              increment, as node:crypto and OpenSSL do), i.e. the encryption of zero bytes
//   uniform    every 8 keystream bytes read as two little-endian uint32 a, b:
//              u = ((a >>> 5) * 2^26 + (b >>> 6)) / 2^53, in [0, 1) (53 random bits)
//   normals    Box-Muller on consecutive uniforms (u1, u2), in binary64:
//              r = sqrt(-2 ln(1 - u1)), t = 2 pi u2, z_(2k) = r cos t, z_(2k+1) = r sin t
//              (1 - u1 is in (0, 1], so the logarithm is finite); an odd count drops the last sine
//   noise[i]   float32(z_i * stddev)                                  (gaussianNoise)
//   noised[i]  float32(float64(x[i]) + z_i * stddev)                  (addGaussianNoise)
// ln, cos and sin are Node's (V8's fdlibm ports, the same on every platform); another language's
// libm may differ in the last binary64 bit, which float32 rounding hides except in rare ties: an
// auditor in another language compares within one float32 ulp, one in Node compares exactly.
//
// Distributed noise (with secure aggregation, no one sees a single update): each of the n
// participants adds N(0, sigma^2 C^2 / n), so the sum carries N(0, sigma^2 C^2) as long as all
// n survive; distributedNoiseStddev gives that stddev.
//
// Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy 2021, "Differentially Private Learning
// with Adaptive Clipping", Alg. 1, geometric update): with b = the number of updates whose norm is
// <= C among m, optionally plus Gaussian noise already drawn for the count,
//   C' = C * exp(-eta * ((b + noise) / m - gamma))
// for learning rate eta and target quantile gamma.

import { createCipheriv } from 'node:crypto';

/** A tensor set in the order the arithmetic walks it (the caller passes schema order). */
export type Tensors = ReadonlyMap<string, Float32Array>;

/** The most elements a noise vector may have: bounded before allocation (1 GiB of float32). */
export const MAX_NOISE_ELEMENTS = 2 ** 28;
const SEED_BYTES = 32;
const CHUNK_NORMALS = 8192;

function checkPositive(value: number, field: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new RangeError(`${field} must be a finite number > 0, got ${String(value)}`);
}

function checkTensors(update: Tensors, field: string): void {
  if (!(update instanceof Map)) throw new TypeError(`${field} must be a Map of Float32Array`);
  for (const [name, values] of update) {
    if (!(values instanceof Float32Array)) throw new TypeError(`${field}["${name}"] must be a Float32Array`);
    for (let i = 0; i < values.length; i++)
      if (!Number.isFinite(values[i])) throw new RangeError(`${field}["${name}"][${i}] is not finite`);
  }
}

/** The binary64 L2 norm of the update, summed as the header fixes. */
export function l2Norm(update: Tensors): number {
  checkTensors(update, 'update');
  let squares = 0;
  for (const values of update.values())
    for (let i = 0; i < values.length; i++) squares += values[i] * values[i];
  return Math.sqrt(squares);
}

export interface Clipped {
  /** The clipped update: fresh arrays, same names and order. */
  update: Map<string, Float32Array>;
  /** The update's norm before clipping (binary64). */
  norm: number;
  /** The factor applied: C / norm when norm > C, else 1. */
  scale: number;
}

/** Clips the update to L2 norm `clip` (C), as the header fixes. */
export function clipToNorm(update: Tensors, clip: number): Clipped {
  checkPositive(clip, 'clip');
  const norm = l2Norm(update);
  const scale = norm > clip ? clip / norm : 1;
  const out = new Map<string, Float32Array>();
  for (const [name, values] of update) {
    const y = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) y[i] = values[i] * scale;
    out.set(name, y);
  }
  return { update: out, norm, scale };
}

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES)
    throw new RangeError(`seed must be a Uint8Array of ${SEED_BYTES} bytes`);
}

function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 0 || count > MAX_NOISE_ELEMENTS)
    throw new RangeError(`count must be an integer in [0, ${MAX_NOISE_ELEMENTS}], got ${String(count)}`);
}

/**
 * Standard normals z_0, z_1, ... from the seed, as the header fixes, passed to `sink` in order.
 * The keystream is produced in chunks so memory stays bounded whatever the count.
 */
function forEachNormal(seed: Uint8Array, count: number, sink: (z: number, index: number) => void): void {
  const cipher = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  let index = 0;
  while (index < count) {
    const pairs = Math.min(CHUNK_NORMALS, Math.ceil((count - index) / 2));
    const bytes = cipher.update(Buffer.alloc(pairs * 16));
    for (let p = 0; p < pairs; p++) {
      const o = p * 16;
      const u1 = ((bytes.readUInt32LE(o) >>> 5) * 2 ** 26 + (bytes.readUInt32LE(o + 4) >>> 6)) / 2 ** 53;
      const u2 = ((bytes.readUInt32LE(o + 8) >>> 5) * 2 ** 26 + (bytes.readUInt32LE(o + 12) >>> 6)) / 2 ** 53;
      const r = Math.sqrt(-2 * Math.log(1 - u1));
      const t = 2 * Math.PI * u2;
      sink(r * Math.cos(t), index++);
      if (index < count) sink(r * Math.sin(t), index++);
    }
  }
}

/** `count` samples of N(0, stddev^2) from the seed, each float32(z * stddev). */
export function gaussianNoise(seed: Uint8Array, count: number, stddev: number): Float32Array {
  checkSeed(seed);
  checkCount(count);
  checkPositive(stddev, 'stddev');
  const out = new Float32Array(count);
  forEachNormal(seed, count, (z, i) => {
    out[i] = z * stddev;
  });
  return out;
}

/** The update plus N(0, stddev^2) noise from the seed, one rounding per element (header). */
export function addGaussianNoise(
  update: Tensors,
  seed: Uint8Array,
  stddev: number,
): Map<string, Float32Array> {
  checkSeed(seed);
  checkPositive(stddev, 'stddev');
  checkTensors(update, 'update');
  const sizes = [...update.values()].map((v) => v.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  checkCount(total);
  const out = new Map<string, Float32Array>();
  const targets: Array<[Float32Array, Float32Array]> = [];
  for (const [name, values] of update) {
    const y = new Float32Array(values.length);
    out.set(name, y);
    targets.push([values, y]);
  }
  let t = 0;
  let offset = 0;
  forEachNormal(seed, total, (z, i) => {
    while (i - offset >= targets[t][0].length) offset += targets[t++][0].length;
    const [x, y] = targets[t];
    y[i - offset] = x[i - offset] + z * stddev;
  });
  return out;
}

/** Noise stddev on the aggregate of clipped updates: sigma * C (central DP-FedAvg). */
export function noiseStddev(noiseMultiplier: number, clip: number): number {
  checkPositive(noiseMultiplier, 'noiseMultiplier');
  checkPositive(clip, 'clip');
  return noiseMultiplier * clip;
}

/** Each of n participants' share of the noise: sigma * C / sqrt(n), so the n shares sum to N(0, sigma^2 C^2). */
export function distributedNoiseStddev(noiseMultiplier: number, clip: number, participants: number): number {
  if (!Number.isSafeInteger(participants) || participants < 1)
    throw new RangeError(`participants must be an integer >= 1, got ${String(participants)}`);
  return noiseStddev(noiseMultiplier, clip) / Math.sqrt(participants);
}

/** How many of the norms are <= clip (the unnoised count b of adaptive clipping). */
export function countWithinClip(norms: readonly number[], clip: number): number {
  checkPositive(clip, 'clip');
  let below = 0;
  norms.forEach((n, k) => {
    if (typeof n !== 'number' || !(n >= 0) || !Number.isFinite(n))
      throw new RangeError(`norms[${k}] must be a finite number >= 0, got ${String(n)}`);
    if (n <= clip) below++;
  });
  return below;
}

export interface AdaptiveClipInput {
  /** The current clip bound C. */
  clip: number;
  /** Updates with norm <= C this round (b). */
  within: number;
  /** Updates counted this round (m >= 1). */
  count: number;
  /** Target quantile gamma in [0, 1] (Andrew et al. suggest 0.5). */
  targetQuantile: number;
  /** Learning rate eta > 0 (Andrew et al. use 0.2). */
  learningRate: number;
  /** Gaussian noise already drawn for the count (0 for none). */
  countNoise?: number;
}

/** The next clip bound by the geometric update of Andrew et al. 2021 (header). */
export function nextClipBound(input: AdaptiveClipInput): number {
  const { clip, within, count, targetQuantile, learningRate, countNoise = 0 } = input;
  checkPositive(clip, 'clip');
  if (!Number.isSafeInteger(count) || count < 1)
    throw new RangeError(`count must be an integer >= 1, got ${String(count)}`);
  if (!Number.isSafeInteger(within) || within < 0 || within > count)
    throw new RangeError(`within must be an integer in [0, count], got ${String(within)}`);
  if (typeof targetQuantile !== 'number' || !(targetQuantile >= 0 && targetQuantile <= 1))
    throw new RangeError(`targetQuantile must be a number in [0, 1], got ${String(targetQuantile)}`);
  checkPositive(learningRate, 'learningRate');
  if (typeof countNoise !== 'number' || !Number.isFinite(countNoise))
    throw new RangeError(`countNoise must be a finite number, got ${String(countNoise)}`);
  const fraction = (within + countNoise) / count;
  const next = clip * Math.exp(-learningRate * (fraction - targetQuantile));
  if (!(next > 0 && Number.isFinite(next)))
    throw new RangeError(`the next clip bound is out of range (${next})`);
  return next;
}
