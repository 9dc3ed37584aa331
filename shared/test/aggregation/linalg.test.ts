// The binary64 linear algebra under product-space aggregation: Householder QR and one-sided Jacobi
// SVD. Each factorisation is checked by what defines it (reconstruction, orthonormality, order,
// the sign rule) on tall, square, wide and rank-deficient matrices, and against hand-worked cases.

import { createHash } from 'node:crypto';
import test from 'ava';
import { applyQ, explicitQ, householderQr, jacobiSvd, JACOBI_MAX_SWEEPS } from '@fedit/shared';

/** Deterministic values in (-1, 1) (mulberry32), so a failure reproduces. */
function randomMatrix(m: number, n: number, seed: number): Float64Array {
  let state = seed >>> 0;
  return Float64Array.from({ length: m * n }, () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  });
}

/** Row-major product of x (m x k) and y (k x n), or of x and y^T when `transposeY`. */
function multiply(x: Float64Array, y: Float64Array, m: number, k: number, n: number, transposeY = false) {
  const z = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += x[i * k + t] * (transposeY ? y[j * k + t] : y[t * n + j]);
      z[i * n + j] = s;
    }
  }
  return z;
}

function maxDifference(x: Float64Array, y: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  return worst;
}

/** max |Q^T Q - I| for a row-major m x p matrix whose columns should be orthonormal. */
function orthonormalityError(q: Float64Array, m: number, p: number): number {
  let worst = 0;
  for (let a = 0; a < p; a++) {
    for (let b = 0; b < p; b++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += q[i * p + a] * q[i * p + b];
      worst = Math.max(worst, Math.abs(s - (a === b ? 1 : 0)));
    }
  }
  return worst;
}

/** U diag(s) V^T. */
function reconstruct(u: Float64Array, s: Float64Array, v: Float64Array, m: number, n: number, p: number) {
  const us = u.map((x, index) => x * s[index % p]);
  return multiply(us, v, m, p, n, true);
}

const SHAPES: [number, number][] = [
  [12, 5],
  [6, 6],
  [3, 7],
  [40, 24],
];

for (const [m, n] of SHAPES) {
  test(`householderQr reconstructs a ${m} x ${n} matrix with orthonormal Q and upper-trapezoidal R`, (t) => {
    const x = randomMatrix(m, n, m * 100 + n);
    const qr = householderQr(x, m, n);
    const { r, p } = qr;
    const q = explicitQ(qr);
    t.is(p, Math.min(m, n));
    t.true(maxDifference(multiply(q, r, m, p, n), x) < 1e-14);
    t.true(orthonormalityError(q, m, p) < 1e-14);
    for (let i = 0; i < p; i++) for (let j = 0; j < i; j++) t.is(r[i * n + j], 0);
    // applyQ is Q X without forming Q.
    const y = randomMatrix(p, 3, n);
    t.true(maxDifference(applyQ(qr, y, 3), multiply(q, y, m, p, 3)) < 1e-14);
  });

  test(`jacobiSvd of a ${m} x ${n} matrix: reconstructs, orthonormal factors, descending values, sign rule`, (t) => {
    const x = randomMatrix(m, n, m * 7 + n);
    const { u, s, v, p, sweeps } = jacobiSvd(x, m, n);
    t.is(p, Math.min(m, n));
    t.true(sweeps < JACOBI_MAX_SWEEPS, `converged in ${sweeps} sweeps`);
    t.true(maxDifference(reconstruct(u, s, v, m, n, p), x) < 1e-13);
    t.true(orthonormalityError(u, m, p) < 1e-13);
    t.true(orthonormalityError(v, n, p) < 1e-13);
    for (let j = 1; j < p; j++) t.true(s[j - 1] >= s[j]);
    t.true(s[p - 1] > 0);
    for (let j = 0; j < p; j++) {
      let best = 0;
      for (let i = 0; i < m; i++) if (Math.abs(u[i * p + j]) > Math.abs(best)) best = u[i * p + j];
      t.true(best > 0, `column ${j}: largest entry ${best}`);
    }
  });
}

test('jacobiSvd of [[3, 0], [4, 5]]: sigma = 3 sqrt 5, sqrt 5; u = (1, 3)/sqrt 10, (3, -1)/sqrt 10; v = (1, +-1)/sqrt 2', (t) => {
  const { u, s, v } = jacobiSvd(new Float64Array([3, 0, 4, 5]), 2, 2);
  const close = (x: Float64Array, y: number[]) =>
    t.true(maxDifference(x, Float64Array.from(y)) < 1e-15, `${x}`);
  close(s, [3 * Math.sqrt(5), Math.sqrt(5)]);
  close(u, [1 / Math.sqrt(10), 3 / Math.sqrt(10), 3 / Math.sqrt(10), -1 / Math.sqrt(10)]);
  close(v, [Math.SQRT1_2, Math.SQRT1_2, Math.SQRT1_2, -Math.SQRT1_2]);
});

test('jacobiSvd of diag(1, -3, 2) sorts the values and moves the sign into V; equal values keep their order', (t) => {
  const d = jacobiSvd(new Float64Array([1, 0, 0, 0, -3, 0, 0, 0, 2]), 3, 3);
  t.deepEqual([...d.s], [3, 2, 1]);
  // Negation is exact, zeros included: the negated column keeps its -0s (part of the bits an auditor compares).
  t.deepEqual([...d.u], [-0, 0, 1, 1, 0, 0, -0, 1, 0]);
  t.deepEqual([...d.v], [-0, 0, 1, -1, 0, 0, -0, 1, 0]);
  t.is(d.sweeps, 1);
  // The identity: no rotation, all values 1, the columns in their own order.
  const identity = jacobiSvd(new Float64Array([1, 0, 0, 1]), 2, 2);
  t.deepEqual([...identity.s, ...identity.u, ...identity.v], [1, 1, 1, 0, 0, 1, 1, 0, 0, 1]);
});

test('rank-deficient input: QR and SVD still reconstruct; a zero singular value has a zero left vector and V decides its sign', (t) => {
  // Rank 2 in a 6 x 4 matrix: x = y z^T with y 6 x 2, z 4 x 2, and a zero column.
  const x = multiply(randomMatrix(6, 2, 11), randomMatrix(4, 2, 12), 6, 2, 4, true);
  for (let i = 0; i < 6; i++) x[i * 4 + 2] = 0;
  const qr = householderQr(x, 6, 4);
  t.true(maxDifference(multiply(explicitQ(qr), qr.r, 6, 4, 4), x) < 1e-14);
  const { u, s, v, p } = jacobiSvd(x, 6, 4);
  t.true(maxDifference(reconstruct(u, s, v, 6, 4, p), x) < 1e-14);
  t.true(s[1] > 0.1);
  t.true(s[2] < 1e-14);
  t.true(orthonormalityError(v, 4, p) < 1e-14);
  // The zero column is never rotated (its inner products are 0), so its singular value is exactly 0.
  const zero = Array.from({ length: p }, (_, j) => j).filter((j) => s[j] === 0);
  t.is(zero.length, 1);
  for (const j of zero) {
    t.true([0, 1, 2, 3, 4, 5].every((i) => u[i * p + j] === 0));
    let best = 0;
    for (let i = 0; i < 4; i++) if (Math.abs(v[i * p + j]) > Math.abs(best)) best = v[i * p + j];
    t.true(best > 0);
  }
});

test('the factorisations are deterministic to the bit and leave their input alone', (t) => {
  const x = randomMatrix(30, 20, 5);
  const copy = x.slice();
  const first = jacobiSvd(x, 30, 20);
  const second = jacobiSvd(x, 30, 20);
  t.deepEqual(Buffer.from(first.u.buffer), Buffer.from(second.u.buffer));
  t.deepEqual(Buffer.from(first.s.buffer), Buffer.from(second.s.buffer));
  t.deepEqual(Buffer.from(first.v.buffer), Buffer.from(second.v.buffer));
  const q = () => Buffer.from(explicitQ(householderQr(x, 30, 20)).buffer);
  t.deepEqual(q(), q());
  t.deepEqual(x, copy);
});

test('the binary64 bits of QR and SVD are pinned, and an independent Python reimplementation of the header gives them', (t) => {
  // shared/bench/product_svd_reference.py, written from this file's header alone, prints this hash.
  const hash = createHash('sha256');
  for (const [m, n] of [
    [9, 6],
    [5, 8],
  ]) {
    const x = Float64Array.from({ length: m * n }, (_, k) => ((k * 7919) % 113) / 113 - 0.5);
    const qr = householderQr(x, m, n);
    const { u, s, v } = jacobiSvd(x, m, n);
    for (const part of [qr.r, explicitQ(qr), u, s, v]) hash.update(new Uint8Array(part.buffer));
  }
  t.is(hash.digest('hex'), '5ad130809783efd1a47158860c147befe201828442b936d0c99d9e499ad3f330');
});

test('a matrix whose size does not match its dimensions is refused naming the mismatch', (t) => {
  t.throws(() => householderQr(new Float64Array(5), 2, 3), {
    instanceOf: RangeError,
    message: /5 values; an 2 x 3/,
  });
  t.throws(() => jacobiSvd(new Float64Array(0), 0, 3), { instanceOf: RangeError, message: /rows m/ });
});
