// Product-space LoRA aggregation: the global update is the weighted mean of the participants'
// updates s_k B_k A_k (not of their factors), re-factored to the global rank by truncated SVD. Each
// test checks the maths against an independent dense computation, and the bytes against a pin.

import { createHash } from 'node:crypto';
import test from 'ava';
import {
  jacobiSvd,
  productSvd,
  productSvdAdapter,
  schemaAtRank,
  truncateAdapterRank,
  type FactorPair,
  type FactorSplit,
} from '@fedit/shared';
import { A_D, A_Q, B_D, B_Q, randomF32, SCHEMA, update } from './lora-fixtures.ts';

function pair(
  rank: number,
  inF: number,
  outF: number,
  seed: number,
  weight: number,
  alpha: number,
): FactorPair {
  return {
    a: randomF32(rank * inF, seed),
    b: randomF32(outF * rank, seed + 1, 0.1),
    rank,
    scale: alpha / rank,
    weight,
  };
}

/** scale * B A (out x in) in binary64. */
function product(
  b: ArrayLike<number>,
  a: ArrayLike<number>,
  rank: number,
  inF: number,
  outF: number,
  scale: number,
) {
  const p = new Float64Array(outF * inF);
  for (let i = 0; i < outF; i++) {
    for (let j = 0; j < inF; j++) {
      let s = 0;
      for (let t = 0; t < rank; t++) s += b[i * rank + t] * a[t * inF + j];
      p[i * inF + j] = scale * s;
    }
  }
  return p;
}

/** The dense P = sum_k w_k s_k B_k A_k / sum_k w_k, which productSvd never forms. */
function denseMean(pairs: FactorPair[], inF: number, outF: number): Float64Array {
  const total = pairs.reduce((sum, p) => sum + p.weight, 0);
  const mean = new Float64Array(outF * inF);
  for (const p of pairs) {
    const term = product(p.b, p.a, p.rank, inF, outF, p.scale);
    for (let i = 0; i < mean.length; i++) mean[i] += (p.weight * term[i]) / total;
  }
  return mean;
}

/** The best rank-r approximation of the dense m x n matrix x, from its full SVD (Eckart-Young). */
function bestRankApproximation(x: Float64Array, m: number, n: number, r: number): Float64Array {
  const { u, s, v, p } = jacobiSvd(x, m, n);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let t = 0; t < Math.min(r, p); t++) sum += u[i * p + t] * s[t] * v[j * p + t];
      out[i * n + j] = sum;
    }
  }
  return out;
}

/** max |x - y| / max |y|. */
function relativeError(x: Float64Array, y: Float64Array): number {
  let worst = 0;
  let size = 0;
  for (let i = 0; i < x.length; i++) {
    worst = Math.max(worst, Math.abs(x[i] - y[i]));
    size = Math.max(size, Math.abs(y[i]));
  }
  return worst / size;
}

test('when the stacked rank fits in the global rank, the result is the weighted mean of the updates itself', (t) => {
  const alpha = 16;
  const pairs = [pair(2, 9, 7, 1, 3, alpha), pair(3, 9, 7, 5, 1, alpha)];
  const { a, b } = productSvd(pairs, 9, 7, 8, alpha / 8);
  t.is(a.length, 8 * 9);
  t.is(b.length, 7 * 8);
  t.true(relativeError(product(b, a, 8, 9, 7, alpha / 8), denseMean(pairs, 9, 7)) < 1e-6);
  // R = 5: components 5, 6, 7 have singular value 0 and are exactly zero in both factors.
  for (let j = 5; j < 8; j++) {
    t.true(a.subarray(j * 9, j * 9 + 9).every((x) => x === 0));
    for (let i = 0; i < 7; i++) t.is(b[i * 8 + j], 0);
  }
});

test('it averages the updates, not the factors: mean(B A) where mean(B) mean(A) is far from it', (t) => {
  // Two participants who learnt orthogonal rank-1 updates e1 e1^T and e2 e2^T.
  const first: FactorPair = {
    a: Float32Array.of(1, 0),
    b: Float32Array.of(1, 0),
    rank: 1,
    scale: 1,
    weight: 1,
  };
  const second: FactorPair = {
    a: Float32Array.of(0, 1),
    b: Float32Array.of(0, 1),
    rank: 1,
    scale: 1,
    weight: 1,
  };
  const { a, b } = productSvd([first, second], 2, 2, 2, 1);
  const mean = Float64Array.of(0.5, 0, 0, 0.5);
  t.true(relativeError(product(b, a, 2, 2, 2, 1), mean) < 1e-7);
  // FedIT's rule averages each factor: mean(B) mean(A) = 0.25 everywhere, off by 0.25 in every entry.
  const meanOf = (x: Float32Array, y: Float32Array) => x.map((value, i) => (value + y[i]) / 2);
  const factorMean = product(
    meanOf(first.b as Float32Array, second.b as Float32Array),
    meanOf(first.a as Float32Array, second.a as Float32Array),
    1,
    2,
    2,
    1,
  );
  t.true(relativeError(factorMean, mean) >= 0.5);
});

test('identical updates, at LoRA-like magnitudes, aggregate to that update although the stacked rank is 3 r', (t) => {
  // A near PEFT's initial scale (+-1/sqrt(in)), B small as after a few local steps.
  const one: FactorPair = {
    a: randomF32(8 * 64, 41, 1 / 8),
    b: randomF32(48 * 8, 42, 1e-3),
    rank: 8,
    scale: 2,
    weight: 7,
  };
  const { a, b } = productSvd([one, { ...one, weight: 1 }, { ...one, weight: 100 }], 64, 48, 8, 2);
  t.true(relativeError(product(b, a, 8, 64, 48, 2), product(one.b, one.a, 8, 64, 48, 2)) < 1e-6);
});

for (const [inF, outF] of [
  [12, 10],
  [40, 40],
]) {
  test(`heterogeneous ranks 2, 4, 8 into rank 8 (${outF} x ${inF}): the best rank-8 approximation of the mean`, (t) => {
    const alpha = 16;
    const pairs = [
      pair(2, inF, outF, 10, 5, alpha),
      pair(4, inF, outF, 20, 2, alpha),
      pair(8, inF, outF, 30, 7, alpha),
    ];
    const { a, b } = productSvd(pairs, inF, outF, 8, alpha / 8);
    const mean = denseMean(pairs, inF, outF);
    const approximation = product(b, a, 8, inF, outF, alpha / 8);
    t.true(relativeError(approximation, bestRankApproximation(mean, outF, inF, 8)) < 1e-5);
    // Eckart-Young: what is left is exactly the energy of the discarded singular values.
    const { s } = jacobiSvd(mean, outF, inF);
    const discarded = s.slice(8).reduce((sum, x) => sum + x * x, 0);
    const residual = mean.reduce((sum, x, i) => sum + (x - approximation[i]) ** 2, 0);
    t.true(discarded > 1e-3 * s[0] ** 2, 'the case really truncates');
    t.true(Math.abs(residual - discarded) < 1e-5 * discarded);
  });
}

test('productSvdAdapter pairs A and B by module, reads each update rank from its shapes and equals productSvd', (t) => {
  const updates = [
    { values: update(2, 1), weight: 3 },
    { values: update(4, 9), weight: 5 },
    { values: update(1, 17), weight: 1 },
  ];
  const result = productSvdAdapter(updates, SCHEMA, { rank: 4, alpha: 8 });
  t.deepEqual([...result.keys()], [...SCHEMA.keys()]);
  for (const [aName, bName, inF, outF] of [
    [A_D, B_D, 10, 6],
    [A_Q, B_Q, 6, 8],
  ] as const) {
    const pairs = updates.map(({ values, weight }, k): FactorPair => {
      const rank = [2, 4, 1][k];
      return { a: values.get(aName)!, b: values.get(bName)!, rank, scale: 8 / rank, weight };
    });
    const direct = productSvd(pairs, inF, outF, 4, 8 / 4);
    t.deepEqual(result.get(aName), direct.a);
    t.deepEqual(result.get(bName), direct.b);
  }
});

test('truncateAdapterRank keeps the top components with the delta unchanged at the lower rank scaling', (t) => {
  const alpha = 8;
  const updates = [1, 2, 3].map((seed) => ({ values: update(4, seed * 10), weight: seed }));
  const global = productSvdAdapter(updates, SCHEMA, { rank: 4, alpha });
  const truncated = truncateAdapterRank(global, SCHEMA, 2);
  const lowSchema = schemaAtRank(SCHEMA, 2);
  t.deepEqual(
    [...lowSchema.values()],
    [
      [2, 10],
      [6, 2],
      [2, 6],
      [8, 2],
    ],
  );
  for (const [name, shape] of lowSchema) t.is(truncated.get(name)!.length, shape[0] * shape[1]);
  const globalDelta = product(global.get(B_Q)!, global.get(A_Q)!, 4, 6, 8, alpha / 4);
  const lowDelta = product(truncated.get(B_Q)!, truncated.get(A_Q)!, 2, 6, 8, alpha / 2);
  t.true(relativeError(lowDelta, bestRankApproximation(globalDelta, 8, 6, 2)) < 1e-6);
  // A's rows are copied exactly (A keeps its split's scale); B carries the rescaling.
  t.deepEqual(truncated.get(A_Q), global.get(A_Q)!.subarray(0, 2 * 6));
  // At its own rank, truncation is the identity.
  t.deepEqual(truncateAdapterRank(global, SCHEMA, 4), global);
});

test('the result is deterministic to the bit: the same bytes twice, and pinned SHA-256s that an independent Python reimplementation gives', (t) => {
  // shared/bench/product_svd_reference.py recomputes these cases from the headers alone and prints the hashes.
  const run = (split: FactorSplit) => {
    const updates = [
      { values: update(2, 4), weight: 2 },
      { values: update(4, 8), weight: 3 },
    ];
    const hash = createHash('sha256');
    for (const values of productSvdAdapter(updates, SCHEMA, { rank: 4, alpha: 8, split }).values()) {
      hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    }
    return hash.digest('hex');
  };
  const first = run('balanced');
  t.is(run('balanced'), first);
  t.is(first, '2049befd4a088ef3d6227a8a1debf17fb7e0384a4e466a062d8cbc1d1fcc5e81');
  t.is(run('orthonormal-a'), 'fa2de10169d3b17095636e7898b4effdab5e2b8adf0279d512a30a084c25bb6c');
});

test('the orthonormal-a split gives A orthonormal rows and B all of sigma, with the same product as the balanced one', (t) => {
  const alpha = 16;
  const pairs = [pair(4, 30, 20, 3, 2, alpha), pair(8, 30, 20, 7, 1, alpha)];
  const balanced = productSvd(pairs, 30, 20, 8, alpha / 8);
  const orthonormal = productSvd(pairs, 30, 20, 8, alpha / 8, 'orthonormal-a');
  const rowDot = (a: Float32Array, x: number, y: number) =>
    a.subarray(x * 30, x * 30 + 30).reduce((sum, value, i) => sum + value * a[y * 30 + i], 0);
  const columnNorm = (b: Float32Array, j: number) =>
    Math.sqrt(Array.from({ length: 20 }, (_, i) => b[i * 8 + j] ** 2).reduce((x, y) => x + y));
  for (let x = 0; x < 8; x++) {
    for (let y = 0; y < 8; y++) t.true(Math.abs(rowDot(orthonormal.a, x, y) - (x === y ? 1 : 0)) < 1e-6);
    // Balanced: A's row and B's column of each component have the same norm.
    const ratio = Math.sqrt(rowDot(balanced.a, x, x)) / columnNorm(balanced.b, x);
    t.true(Math.abs(ratio - 1) < 1e-6, `component ${x}: ${ratio}`);
  }
  const p1 = product(balanced.b, balanced.a, 8, 30, 20, alpha / 8);
  t.true(relativeError(product(orthonormal.b, orthonormal.a, 8, 30, 20, alpha / 8), p1) < 1e-6);
});
