// Fixed-point encoding of an update into the ring Z/2^32 for secure aggregation, and decoding of
// the SUM of n encodings, fixed to the bit so an auditor reproduces every word:
//
//   config       clipRange R (binary64, > 0, finite), scaleBits k (integer 0..30: scale 2^k),
//                maxParticipants N (1..2^20), maxWeight W (integer 1..2^29, the example-count cap)
//   bound        B = ceil(W · R · 2^k), the largest |q| one encoded coordinate can take
//   overflow     refused unless N · B < 2^31 and N · W < 2^31: then the true sum of any n <= N
//                encodings lies in (−2^31, 2^31) and its residue mod 2^32 names it uniquely
//   encode       for coordinate i of update x (float32, widened exactly), weight w (1..W):
//                  c = min(R, max(−R, x[i]))           clip in binary64
//                  v = (w · c) · 2^k                   binary64, round-to-nearest-even
//                  f = floor(v), r = v − f             both exact
//                  u = PRG(roundingSeed, L)[i]         prg.ts's AES-256-CTR words
//                  q = f + (u < r · 2^32 ? 1 : 0)      stochastic rounding: E[q] = v
//                  word[i] = q mod 2^32                two's complement
//                and one more word, word[L] = w, so the masked sum carries the total weight
//   decode       for a sum s of n encodings (mod 2^32): signed(s) = s − 2^32 if s >= 2^31 else s;
//                sum[i] = signed(s[i]) / 2^k (exact); total weight T = s[L] (< 2^31);
//                mean[i] = float32(signed(s[i]) / (2^k · T)), one binary64 division
//
// Flower's SecAgg+ quantiser shifts [−R, R] onto [0, target] and subtracts n offsets after the sum;
// the two's complement form here is the same map with the offset folded into the residue, which
// is why decoding needs no offset term beyond the condition that n summands cannot wrap.
// FedIT weighting under masks: each participant encodes w·x (w its capped example count) and w
// itself, so the unmasked sum yields Σ w·x and Σ w and nothing per participant.

import { expandSeed, MAX_PRG_WORDS, SEED_BYTES, checkBytes, checkInteger } from './prg.ts';
import { SecAggError } from './secagg-error.ts';

/** A fixed-point configuration as the federation config would state it. */
export interface FixedPointConfig {
  clipRange: number;
  scaleBits: number;
  maxParticipants: number;
  maxWeight: number;
}

const TWO_31 = 2 ** 31;
const TWO_32 = 2 ** 32;
/** The most participants one configuration may cover. */
export const MAX_FIXED_POINT_PARTICIPANTS = 2 ** 20;
/** The largest example-count cap: w·c stays exact for a float32 c below it. */
export const MAX_FIXED_POINT_WEIGHT = 2 ** 29;

/** B = ceil(W · R · 2^k) for a validated config. */
export function fixedPointBound(config: FixedPointConfig): number {
  return Math.ceil(config.maxWeight * config.clipRange * 2 ** config.scaleBits);
}

/** Returns `config` when it is valid and cannot overflow; throws SecAggError naming the field. */
export function checkFixedPointConfig(config: FixedPointConfig): FixedPointConfig {
  if (typeof config !== 'object' || config === null) {
    throw new SecAggError('SECAGG_CONFIG', 'fixed-point config must be an object');
  }
  const { clipRange, scaleBits, maxParticipants, maxWeight } = config;
  if (typeof clipRange !== 'number' || !Number.isFinite(clipRange) || clipRange <= 0) {
    throw new SecAggError('SECAGG_CONFIG', 'clipRange must be a positive finite number');
  }
  if (!Number.isInteger(scaleBits) || scaleBits < 0 || scaleBits > 30) {
    throw new SecAggError('SECAGG_CONFIG', 'scaleBits must be an integer from 0 to 30');
  }
  if (
    !Number.isInteger(maxParticipants) ||
    maxParticipants < 1 ||
    maxParticipants > MAX_FIXED_POINT_PARTICIPANTS
  ) {
    throw new SecAggError(
      'SECAGG_CONFIG',
      `maxParticipants must be an integer from 1 to ${MAX_FIXED_POINT_PARTICIPANTS}`,
    );
  }
  if (!Number.isInteger(maxWeight) || maxWeight < 1 || maxWeight > MAX_FIXED_POINT_WEIGHT) {
    throw new SecAggError(
      'SECAGG_CONFIG',
      `maxWeight must be an integer from 1 to ${MAX_FIXED_POINT_WEIGHT}`,
    );
  }
  const bound = fixedPointBound(config);
  // Products of numbers below 2^53 compared in binary64: N·B may round, so compare B against
  // the largest allowed value instead, which is exact integer arithmetic.
  if (bound > Math.floor((TWO_31 - 1) / maxParticipants)) {
    throw new SecAggError(
      'SECAGG_CONFIG',
      `clipRange, scaleBits, maxWeight and maxParticipants can overflow: ` +
        `maxParticipants · ceil(maxWeight · clipRange · 2^scaleBits) = ${maxParticipants} · ${bound} must be below 2^31`,
    );
  }
  if (maxWeight > Math.floor((TWO_31 - 1) / maxParticipants)) {
    throw new SecAggError('SECAGG_CONFIG', 'maxParticipants · maxWeight must be below 2^31');
  }
  return config;
}

/**
 * Encodes `weight`·clip(`update`) into L+1 ring words (the last is `weight`), stochastic rounding
 * drawn from PRG(`roundingSeed`). Throws SecAggError naming the field for a non-finite value, a
 * weight outside 1..maxWeight, or an update longer than MAX_PRG_WORDS − 1.
 */
export function encodeUpdate(
  update: Float32Array,
  weight: number,
  config: FixedPointConfig,
  roundingSeed: Uint8Array,
): Uint32Array {
  checkFixedPointConfig(config);
  if (!(update instanceof Float32Array))
    throw new SecAggError('SECAGG_INPUT', 'update must be a Float32Array');
  checkInteger(update.length, MAX_PRG_WORDS - 1, 'update.length');
  checkBytes(roundingSeed, SEED_BYTES, 'roundingSeed');
  if (!Number.isInteger(weight) || weight < 1 || weight > config.maxWeight) {
    throw new SecAggError(
      'SECAGG_INPUT',
      `weight must be an integer from 1 to maxWeight (${config.maxWeight})`,
    );
  }
  const scale = 2 ** config.scaleBits;
  const R = config.clipRange;
  const uniform = expandSeed(roundingSeed, update.length);
  const words = new Uint32Array(update.length + 1);
  for (let i = 0; i < update.length; i++) {
    const x = update[i];
    if (!Number.isFinite(x)) throw new SecAggError('SECAGG_INPUT', `update[${i}] is not finite`);
    const v = weight * Math.min(R, Math.max(-R, x)) * scale;
    const f = Math.floor(v);
    // Uint32Array stores ToUint32(q), which is q mod 2^32: the two's complement word.
    words[i] = f + (uniform[i] < (v - f) * TWO_32 ? 1 : 0);
  }
  words[update.length] = weight;
  return words;
}

/** signed(s): the residue in [−2^31, 2^31) that names the true sum under the overflow condition. */
export function ringToSigned(word: number): number {
  return word >= TWO_31 ? word - TWO_32 : word;
}

function checkSum(sum: Uint32Array, participants: number, config: FixedPointConfig): void {
  checkFixedPointConfig(config);
  if (!(sum instanceof Uint32Array) || sum.length < 1) {
    throw new SecAggError('SECAGG_INPUT', 'sum must be a non-empty Uint32Array');
  }
  if (!Number.isInteger(participants) || participants < 1 || participants > config.maxParticipants) {
    throw new SecAggError(
      'SECAGG_INPUT',
      `participants must be an integer from 1 to maxParticipants (${config.maxParticipants})`,
    );
  }
}

/** The decoded sum of `participants` encodings: Σ w·x per coordinate and Σ w. */
export function decodeSum(
  sum: Uint32Array,
  participants: number,
  config: FixedPointConfig,
): { values: Float64Array; totalWeight: number } {
  checkSum(sum, participants, config);
  const L = sum.length - 1;
  const totalWeight = sum[L];
  // A total weight outside [n, n·W] cannot come from n honest encodings: the sum is corrupt or
  // was formed over a different set than `participants`.
  if (totalWeight < participants || totalWeight > participants * config.maxWeight) {
    throw new SecAggError(
      'SECAGG_INPUT',
      `sum's total weight ${totalWeight} cannot come from ${participants} encodings`,
    );
  }
  const scale = 2 ** config.scaleBits;
  const values = new Float64Array(L);
  for (let i = 0; i < L; i++) values[i] = ringToSigned(sum[i]) / scale;
  return { values, totalWeight };
}

/** The weighted mean Σ w·x / Σ w of `participants` encodings, as float32 (see the header). */
export function decodeWeightedMean(
  sum: Uint32Array,
  participants: number,
  config: FixedPointConfig,
): Float32Array {
  const { totalWeight } = decodeSum(sum, participants, config);
  const divisor = 2 ** config.scaleBits * totalWeight;
  const mean = new Float32Array(sum.length - 1);
  for (let i = 0; i < mean.length; i++) mean[i] = ringToSigned(sum[i]) / divisor;
  return mean;
}
