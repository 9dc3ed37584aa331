// The Rényi-DP accountant of the sampled Gaussian mechanism against published values (TensorFlow
// Privacy's rdp_accountant_test.py) and against rdp-vectors.py, an independent python3
// re-implementation (exact binomials by math.comb / fractions.Fraction, erfc by math.erfc) run
// once here to produce the numbers below: `python3 shared/test/privacy/rdp-vectors.py`.

import test from 'ava';
import { computeRdp, DEFAULT_RDP_ORDERS, logErfc, privacySpent, rdpSampledGaussian } from '@fedit/shared';

const close = (actual: number, expected: number, relative: number) =>
  Math.abs(actual - expected) <= relative * Math.abs(expected);

test('the default orders are Opacus DEFAULT_ALPHAS: 1.1 .. 10.9 by 0.1, then 12 .. 63', (t) => {
  t.is(DEFAULT_RDP_ORDERS.length, 99 + 52);
  t.is(DEFAULT_RDP_ORDERS[0], 1.1);
  t.is(DEFAULT_RDP_ORDERS[98], 10.9);
  t.is(DEFAULT_RDP_ORDERS[99], 12);
  t.is(DEFAULT_RDP_ORDERS.at(-1), 63);
  // 1 + 3/10 in binary64 is 1.3000000000000003, as in Python; the list keeps that spelling.
  t.is(DEFAULT_RDP_ORDERS[2], 1 + 3 / 10);
});

test('q = 0 gives 0 and q = 1 gives order / (2 sigma^2) (TF Privacy: compute_rdp(1, 10, 1, 20) == 0.1)', (t) => {
  t.is(rdpSampledGaussian(0, 10, 20), 0);
  t.is(rdpSampledGaussian(1, 10, 20), 0.1);
  t.is(rdpSampledGaussian(1, 2, 2.5), 2.5 / 8);
});

test('TF Privacy test_compute_rdp_scalar: compute_rdp(q=0.1, sigma=2, steps=10, order=5) = 0.07737', (t) => {
  const [rdp] = computeRdp({ q: 0.1, noiseMultiplier: 2, steps: 10, orders: [5] });
  t.true(Math.abs(rdp - 0.07737) < 5e-6, String(rdp));
});

test('TF Privacy test_compute_rdp_sequence: q=0.01, sigma=2.5, 50 steps at 1.5, 2.5, 5, 50, 100', (t) => {
  const rdp = computeRdp({ q: 0.01, noiseMultiplier: 2.5, steps: 50, orders: [1.5, 2.5, 5, 50, 100] });
  const published = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307];
  rdp.forEach((r, k) => t.true(Math.abs(r - published[k]) < 1e-5, `order ${k}: ${r}`));
});

// [q, sigma, order, rdp per step from rdp-vectors.py]
const VECTORS: Array<[number, number, number, number]> = [
  [0.01, 2.5, 1.5, 1.3001417948937439e-5],
  [0.01, 2.5, 2.5, 2.1708361136537253e-5],
  [0.01, 2.5, 5, 4.361513124615523e-5],
  [0.01, 2.5, 50, 0.00047692075077411636],
  [0.01, 2.5, 100, 3.3483261509683655],
  [0.1, 2, 5, 0.007736968489795912],
  [1e-3, 10, 1.1, 5.527537513277817e-9],
  [1e-3, 10, 63, 3.1677495773191903e-7],
  [0.05, 0.8, 3.7, 0.037505227115786265],
  [0.3, 1.2, 10.9, 2.461819932297499],
  [0.5, 5, 32, 0.22939314056080462],
  // Large orders, where the binomials reach 1e306 (C(1024, 512)).
  [0.01, 5, 1024, 15.870328181376536],
  [0.2, 3, 1000, 53.94450659416006],
  [0.01, 5, 512.5, 5.63582667780925],
];

test('integer and fractional orders match the independent python3 implementation to 1e-10', (t) => {
  for (const [q, sigma, order, expected] of VECTORS) {
    const rdp = rdpSampledGaussian(q, sigma, order);
    t.true(close(rdp, expected, 1e-10), `q=${q} sigma=${sigma} order=${order}: ${rdp} vs ${expected}`);
  }
});

test('logErfc matches python math.erfc, and its Laurent tail where erfc underflows', (t) => {
  const values: Array<[number, number]> = [
    [-3.5, 0.69314680901069],
    [-1.0, 0.6112323176780705],
    [-0.3, 0.28414589714140825],
    [0, 0],
    [0.5, -0.7350111298370844],
    [0.99, -1.823300103854902],
    [1, -1.8496055099332482],
    [2.5, -7.806815272727264],
    [10, -102.87988902484489],
    [26, -679.8311997631943],
    [40, -1604.2615566532734],
  ];
  for (const [x, expected] of values) {
    const got = logErfc(x);
    t.true(
      Math.abs(got - expected) <= 1e-13 * Math.max(1, Math.abs(expected)),
      `x=${x}: ${got} vs ${expected}`,
    );
  }
});

test('epsilon over the default orders matches the python3 implementation (value and best order)', (t) => {
  // [q, sigma, steps, delta, epsilon, order]
  const cases: Array<[number, number, number, number, number, number]> = [
    [0.01, 1.1, 1000, 1e-5, 1.7117700912207567, 9.6],
    [256 / 60000, 1.1, 14060, 1e-5, 2.5963565495055088, 8.1],
    [0.1, 1.0, 100, 1e-6, 8.914791986329936, 3.3],
    [50 / 1000, 0.8, 40, 1e-5, 4.958952011594729, 3.6],
  ];
  for (const [q, noiseMultiplier, steps, delta, epsilon, order] of cases) {
    const spent = privacySpent(DEFAULT_RDP_ORDERS, computeRdp({ q, noiseMultiplier, steps }), delta);
    t.true(close(spent.epsilon, epsilon, 1e-10), `q=${q}: ${spent.epsilon} vs ${epsilon}`);
    // Python's repr of the order, the shortest round-trip decimal: the same binary64.
    t.is(spent.order, order);
  }
});

test('TF Privacy test_get_privacy_spent_check_target_delta: constant rdp 1.1 over orders 2..32 gives 1.32783806176 at 32', (t) => {
  const orders = Array.from({ length: 31 }, (_, k) => k + 2);
  const spent = privacySpent(
    orders,
    orders.map(() => 1.1),
    1e-5,
  );
  t.is(spent.order, 32);
  t.true(Math.abs(spent.epsilon - 1.32783806176) < 5e-8);
});

test('TF Privacy: sigma = 4.530877117 without sampling is (1, 1e-6)-DP over fine orders', (t) => {
  // TF's test scans orders 1.000..99.999 by 0.001; the optimum lies at 21.985, so this window of
  // 4000 orders around it gives the same minimum.
  const orders = Array.from({ length: 4000 }, (_, k) => 0.001 * (20000 + k));
  const spent = privacySpent(
    orders,
    computeRdp({ q: 1, noiseMultiplier: 4.530877117, steps: 1, orders }),
    1e-6,
  );
  t.true(Math.abs(spent.epsilon - 1) < 5e-8, String(spent.epsilon));
});

test('monotone: more steps spend more, more noise spends less, a larger sampling rate spends more', (t) => {
  const eps = (q: number, noiseMultiplier: number, steps: number) =>
    privacySpent(DEFAULT_RDP_ORDERS, computeRdp({ q, noiseMultiplier, steps }), 1e-5).epsilon;
  let previous = 0;
  for (const steps of [1, 10, 100, 1000]) {
    const e = eps(0.02, 1.0, steps);
    t.true(e > previous, `steps ${steps}`);
    previous = e;
  }
  previous = Infinity;
  for (const sigma of [0.7, 1, 1.5, 3, 10]) {
    const e = eps(0.02, sigma, 100);
    t.true(e < previous, `sigma ${sigma}`);
    previous = e;
  }
  t.true(eps(0.01, 1, 100) < eps(0.05, 1, 100));
  t.true(eps(0.05, 1, 100) < eps(1, 1, 100));
});

test('inputs are validated with the field named', (t) => {
  t.throws(() => rdpSampledGaussian(1.5, 1, 2), { message: /^q must be/ });
  t.throws(() => rdpSampledGaussian(Number.NaN, 1, 2), { message: /^q must be/ });
  t.throws(() => rdpSampledGaussian(0.1, 0, 2), { message: /^noiseMultiplier must be/ });
  t.throws(() => rdpSampledGaussian(0.1, 1, 1), { message: /^orders\[0\] must be/ });
  t.throws(() => rdpSampledGaussian(0.1, 1, 2000), { message: /^orders\[0\] must be/ });
  t.throws(() => computeRdp({ q: 0.1, noiseMultiplier: 1, steps: 1.5 }), { message: /^steps must be/ });
  t.throws(() => computeRdp({ q: 0.1, noiseMultiplier: 1, steps: 1, orders: [] }), {
    message: /^orders must be/,
  });
  t.throws(() => privacySpent([2, 3], [0.1], 1e-5), { message: /^rdp must be/ });
  t.throws(() => privacySpent([2], [0.1], 0), { message: /^delta must be/ });
  t.throws(() => privacySpent([2], [-1], 1e-5), { message: /^rdp\[0\] must be/ });
  t.throws(() => logErfc(Infinity), { message: /x must be finite/ });
});

test('at very large noise multipliers the RDP is small and never negative (the series rounds near 0)', (t) => {
  // Before the clamp, q = 0.01 at sigma = 2^20 gave about -1e-11 at some orders, which
  // privacySpent refuses; the true value lies in [0, order / (2 sigma^2)] (the unsampled bound), here within the
  // series' rounding noise of about 1e-12.
  for (const sigma of [2 ** 16, 2 ** 20, 2 ** 24]) {
    for (const q of [0.01, 0.1, 0.5]) {
      for (const order of DEFAULT_RDP_ORDERS) {
        const rdp = rdpSampledGaussian(q, sigma, order);
        const unsampled = order / (2 * sigma * sigma);
        t.true(rdp >= 0 && rdp <= unsampled + 1e-11, `q ${q}, sigma ${sigma}, order ${order}: ${rdp}`);
      }
    }
  }
});
