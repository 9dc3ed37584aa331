// Fixed-point ring encoding (secagg/fixed-point.ts). The encoding vector comes from a Python
// re-implementation of the header run here (struct '<f' for float32, cryptography's AES-256-CTR for
// the rounding words, math.floor, q % 2^32); the decoding tests compare against sums formed in
// binary64 from the inputs, and check the overflow condition at its edge.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import {
  addModular,
  checkFixedPointConfig,
  decodeSum,
  decodeWeightedMean,
  encodeUpdate,
  fixedPointBound,
  ringToSigned,
  SecAggError,
  type FixedPointConfig,
} from '@fedit/shared';

const sha = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const config = (over: Partial<FixedPointConfig> = {}): FixedPointConfig => ({
  clipRange: 0.5,
  scaleBits: 16,
  maxParticipants: 100,
  maxWeight: 8,
  ...over,
});

test('encoding equals the Python re-implementation word for word (clip, weight, stochastic rounding)', (t) => {
  const xs = Float32Array.from([0.1, -0.1, 0.7, -3.0, 0.0, 1e-6, -1e-6, 0.49999, 0.25, -0.3333]);
  const words = encodeUpdate(xs, 3, config(), sha('fedit test rounding'));
  t.deepEqual(
    [...words],
    [19661, 4294947635, 98304, 4294868992, 0, 0, 4294967295, 98302, 49152, 4294901766, 3],
  );
});

test('stochastic rounding is unbiased: the mean over many seeds approaches v', (t) => {
  const x = Float32Array.from([0.3, -0.123456]);
  const cfg = config({ scaleBits: 4, maxWeight: 1 });
  const sums = [0, 0];
  const draws = 4000;
  for (let d = 0; d < draws; d++) {
    const w = encodeUpdate(x, 1, cfg, new Uint8Array(randomBytes(32)));
    sums[0] += ringToSigned(w[0]);
    sums[1] += ringToSigned(w[1]);
  }
  // v = x·16: 4.8 and −1.975...; the rounding's standard deviation is at most 1/2, so the mean of
  // 4000 draws sits within 0.05 of v with overwhelming probability (10 standard errors).
  t.true(Math.abs(sums[0] / draws - x[0] * 16) < 0.05);
  t.true(Math.abs(sums[1] / draws - x[1] * 16) < 0.05);
});

test('the decoded sum of n weighted encodings is Σ w·clip(x) within n/2^k, and the mean its quotient', (t) => {
  const cfg = config();
  const n = 40;
  const L = 300;
  const sum = new Uint32Array(L + 1);
  const exact = new Float64Array(L);
  let totalWeight = 0;
  for (let p = 0; p < n; p++) {
    const x = Float32Array.from({ length: L }, () => (Math.random() - 0.5) * 1.5);
    const w = 1 + (p % 8);
    totalWeight += w;
    for (let i = 0; i < L; i++) exact[i] += w * Math.min(0.5, Math.max(-0.5, x[i]));
    addModular(sum, encodeUpdate(x, w, cfg, new Uint8Array(randomBytes(32))));
  }
  const decoded = decodeSum(sum, n, cfg);
  t.is(decoded.totalWeight, totalWeight);
  const tolerance = n / 2 ** cfg.scaleBits;
  for (let i = 0; i < L; i++) t.true(Math.abs(decoded.values[i] - exact[i]) <= tolerance, `coordinate ${i}`);
  const mean = decodeWeightedMean(sum, n, cfg);
  for (let i = 0; i < L; i++)
    t.is(mean[i], Math.fround((decoded.values[i] * 2 ** cfg.scaleBits) / (2 ** cfg.scaleBits * totalWeight)));
});

test('at the overflow edge, n encodings all at +R or all at −R decode without wrapping', (t) => {
  // B = ceil(3 · 1 · 2^10) = 3072; the largest n with n·B < 2^31 is floor((2^31 − 1)/3072) = 699050.
  const edge = config({ clipRange: 1, scaleBits: 10, maxWeight: 3, maxParticipants: 699050 });
  t.is(fixedPointBound(edge), 3072);
  t.notThrows(() => checkFixedPointConfig(edge));
  t.throws(() => checkFixedPointConfig({ ...edge, maxParticipants: 699051 }), {
    instanceOf: SecAggError,
    message: /can overflow: maxParticipants · ceil/,
  });
  for (const sign of [1, -1]) {
    const one = encodeUpdate(Float32Array.of(sign * 5), 3, edge, sha('edge'));
    t.is(ringToSigned(one[0]), sign * 3072);
    // The sum of 699050 copies, formed mod 2^32 the way addModular does.
    const sum = Uint32Array.of(Number((BigInt(one[0]) * 699050n) % 2n ** 32n), 3 * 699050);
    t.is(decodeSum(sum, 699050, edge).values[0], (sign * 3072 * 699050) / 1024);
  }
});

test('configs and inputs are refused with the field named', (t) => {
  const seed = new Uint8Array(32);
  t.throws(() => checkFixedPointConfig(config({ clipRange: 0 })), {
    message: /clipRange must be a positive/,
  });
  t.throws(() => checkFixedPointConfig(config({ clipRange: Infinity })), { message: /clipRange/ });
  t.throws(() => checkFixedPointConfig(config({ scaleBits: 31 })), { message: /scaleBits must be/ });
  t.throws(() => checkFixedPointConfig(config({ maxParticipants: 0 })), {
    message: /maxParticipants must be/,
  });
  t.throws(() => checkFixedPointConfig(config({ maxWeight: 1.5 })), { message: /maxWeight must be/ });
  t.throws(
    () => checkFixedPointConfig(config({ scaleBits: 30, clipRange: 1, maxParticipants: 2, maxWeight: 1 })),
    {
      message: /can overflow/,
    },
  );
  t.throws(() => encodeUpdate(Float32Array.of(Number.NaN), 1, config(), seed), {
    message: /update\[0\] is not finite/,
  });
  t.throws(() => encodeUpdate(Float32Array.of(0), 9, config(), seed), {
    message: /weight must be an integer from 1 to maxWeight \(8\)/,
  });
  t.throws(() => encodeUpdate(Float32Array.of(0), 1, config(), new Uint8Array(3)), {
    message: /roundingSeed must be 32 bytes/,
  });
  t.throws(() => decodeSum(new Uint32Array(2), 101, config()), {
    message: /participants must be an integer from 1 to maxParticipants/,
  });
  t.throws(() => decodeSum(Uint32Array.of(0, 2), 3, config()), {
    message: /total weight 2 cannot come from 3 encodings/,
  });
  t.throws(() => decodeSum(Uint32Array.of(0, 25), 3, config()), { message: /total weight 25/ });
});
