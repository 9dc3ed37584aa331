// DP-FedAvg arithmetic: clipping on hand-computed vectors, the seeded noise against an
// independent derivation (the AES-256-CTR keystream from `openssl enc -aes-256-ctr`, the uniforms
// and Box-Muller in python3), noise statistics, and the adaptive clipping step.

import test from 'ava';
import {
  addGaussianNoise,
  clipToNorm,
  countWithinClip,
  distributedNoiseStddev,
  gaussianNoise,
  l2Norm,
  nextClipBound,
  noiseStddev,
} from '@fedit/shared';

const SEED = Uint8Array.from({ length: 32 }, (_, i) => i);

test('clipping: a 3-4-12 update (norm 13) clipped to 6.5 halves, one under the bound is unchanged', (t) => {
  const update = new Map([
    ['a', Float32Array.of(3, 4)],
    ['b', Float32Array.of(12)],
  ]);
  t.is(l2Norm(update), 13);
  const clipped = clipToNorm(update, 6.5);
  t.is(clipped.norm, 13);
  t.is(clipped.scale, 0.5);
  t.deepEqual([...clipped.update.keys()], ['a', 'b']);
  t.deepEqual([...clipped.update.get('a')!], [1.5, 2]);
  t.deepEqual([...clipped.update.get('b')!], [6]);
  const same = clipToNorm(update, 13);
  t.is(same.scale, 1);
  t.deepEqual([...same.update.get('b')!], [12]);
  t.not(same.update.get('b'), update.get('b'));
});

test('clipping rounds once to float32: [1, 1, 1] to norm 1 gives float32(1/sqrt(3))', (t) => {
  const clipped = clipToNorm(new Map([['x', Float32Array.of(1, 1, 1)]]), 1);
  // python3: struct.unpack('f', struct.pack('f', 1/math.sqrt(3)))[0] == 0.5773502588272095
  t.deepEqual([...clipped.update.get('x')!], [0.5773502588272095, 0.5773502588272095, 0.5773502588272095]);
  t.is(clipped.norm, Math.sqrt(3));
});

test('noise: the first six values for seed 00 01 .. 1f match openssl + python3 Box-Muller', (t) => {
  // Keystream: head -c 48 /dev/zero | openssl enc -aes-256-ctr -K 000102..1f -iv 00..00
  // = f29000b62a499fd0 a9f39a6add2e7780 f05d76ae4ab99fe5 a6f69b3148c2363d 0ebcb5deb52c83bd 08a8a935182c9199
  // then the header's uniforms and Box-Muller in python3 (math.log, math.cos, math.sin), times 0.5, float32.
  const expected = [
    -0.6816288828849792, 0.3949090838432312, 0.2616227865219116, 0.7096548080444336, 0.2534942030906677,
    0.9775987863540649,
  ];
  t.deepEqual([...gaussianNoise(SEED, 6, 0.5)], expected);
  // An odd count drops the last sine; a prefix is the same whatever the count.
  t.deepEqual([...gaussianNoise(SEED, 5, 0.5)], expected.slice(0, 5));
});

test('noise is deterministic per seed, differs across seeds, and continues across tensors', (t) => {
  const a = gaussianNoise(SEED, 20_000, 1);
  t.deepEqual(gaussianNoise(SEED, 20_000, 1), a);
  const other = Uint8Array.from(SEED);
  other[31] ^= 1;
  t.notDeepEqual(gaussianNoise(other, 16, 1), a.subarray(0, 16));
  // addGaussianNoise walks the tensors in order with one stream: zeros plus noise is the noise.
  const update = new Map([
    ['a', new Float32Array(3)],
    ['b', new Float32Array(0)],
    ['c', Float32Array.of(1, 2)],
  ]);
  const noised = addGaussianNoise(update, SEED, 2);
  const noise = gaussianNoise(SEED, 5, 2);
  t.deepEqual([...noised.get('a')!], [...noise.subarray(0, 3)]);
  t.is(noised.get('b')!.length, 0);
  // 1 + z*2 rounded once, from the same z: within half an ulp of float32(1 + float32(z*2)).
  t.true(Math.abs(noised.get('c')![0] - (1 + noise[3])) < 1e-6);
  t.true(Math.abs(noised.get('c')![1] - (2 + noise[4])) < 1e-6);
});

test('noise statistics over 10^6 samples: mean, variance, tails of N(0, 1.5^2)', (t) => {
  const n = 1_000_000;
  const sigma = 1.5;
  const x = gaussianNoise(SEED, n, sigma);
  let sum = 0;
  let squares = 0;
  let beyond2 = 0;
  for (const v of x) {
    sum += v;
    squares += v * v;
    if (Math.abs(v) > 2 * sigma) beyond2++;
  }
  const mean = sum / n;
  const variance = squares / n - mean * mean;
  // Standard errors: sigma/sqrt(n) = 0.0015 for the mean, sigma^2 sqrt(2/n) = 0.0032 for the variance.
  t.true(Math.abs(mean) < 5 * 0.0015, `mean ${mean}`);
  t.true(Math.abs(variance - sigma * sigma) < 5 * 0.0032, `variance ${variance}`);
  // P(|Z| > 2) = erfc(sqrt 2) = 0.0455003 (python3 math.erfc(math.sqrt(2))); sd of the count ~ 208.
  t.true(Math.abs(beyond2 - 0.0455003 * n) < 5 * 208, `beyond 2 sigma: ${beyond2}`);
});

test('noise scales: central sigma*C, distributed sigma*C/sqrt(n) whose n shares sum to sigma^2 C^2', (t) => {
  t.is(noiseStddev(1.2, 0.5), 0.6);
  t.is(distributedNoiseStddev(1.2, 0.5, 4), 0.3);
  const n = 9;
  const share = distributedNoiseStddev(1, 3, n);
  t.true(Math.abs(n * share * share - 9) < 1e-12);
});

test('adaptive clipping: C * exp(-eta (b/m - gamma)) against hand values', (t) => {
  // python3: 1.0 * math.exp(-0.2 * (8/10 - 0.5)) = 0.9417645335842487
  t.is(
    nextClipBound({ clip: 1, within: 8, count: 10, targetQuantile: 0.5, learningRate: 0.2 }),
    0.9417645335842487,
  );
  // python3: 2.0 * math.exp(-0.2 * ((3 + 0.5)/10 - 0.5)) = 2.060909067907034
  t.is(
    nextClipBound({ clip: 2, within: 3, count: 10, targetQuantile: 0.5, learningRate: 0.2, countNoise: 0.5 }),
    2.060909067907034,
  );
  // At the target quantile the bound stays.
  t.is(nextClipBound({ clip: 0.7, within: 5, count: 10, targetQuantile: 0.5, learningRate: 0.2 }), 0.7);
  t.is(countWithinClip([0.5, 1, 1.5, 0], 1), 3);
});

test('inputs are validated with the field named', (t) => {
  const update = new Map([['x', Float32Array.of(1, Number.NaN)]]);
  t.throws(() => clipToNorm(update, 1), { message: /update\["x"\]\[1\] is not finite/ });
  t.throws(() => clipToNorm(new Map([['x', Float32Array.of(1)]]), 0), { message: /^clip/ });
  t.throws(() => gaussianNoise(new Uint8Array(16), 1, 1), { message: /^seed/ });
  t.throws(() => gaussianNoise(SEED, 2 ** 28 + 1, 1), { message: /^count/ });
  t.throws(() => gaussianNoise(SEED, 1, -1), { message: /^stddev/ });
  t.throws(() => distributedNoiseStddev(1, 1, 0), { message: /^participants/ });
  t.throws(() => nextClipBound({ clip: 1, within: 11, count: 10, targetQuantile: 0.5, learningRate: 0.2 }), {
    message: /^within/,
  });
  t.throws(() => nextClipBound({ clip: 1, within: 1, count: 10, targetQuantile: 1.5, learningRate: 0.2 }), {
    message: /^targetQuantile/,
  });
  t.throws(() => nextClipBound({ clip: 1, within: 1, count: 10, targetQuantile: 0.5, learningRate: 0 }), {
    message: /^learningRate/,
  });
  t.throws(() => countWithinClip([-1], 1), { message: /norms\[0\]/ });
});
