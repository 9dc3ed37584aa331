// Rényi-DP accounting for the sampled Gaussian mechanism (SGM): each participant is selected
// independently with probability q and the sum of their (clipped, sensitivity-1) updates receives
// Gaussian noise of standard deviation sigma (the noise multiplier). Mironov, Talwar, Zhang 2019,
// "Rényi Differential Privacy of the Sampled Gaussian Mechanism" (arXiv:1908.10530).
//
// The numbers match TensorFlow Privacy's compute_rdp and Opacus' analysis/rdp.py; the formulas:
//
//   rdp(q, sigma, a) = 0                          q = 0
//                    = a / (2 sigma^2)            q = 1 (the plain Gaussian mechanism)
//                    = log(A_a) / (a - 1)         otherwise
//
//   integer a:     A_a = sum_{i=0..a} C(a,i) q^i (1-q)^(a-i) exp((i^2 - i) / (2 sigma^2))
//                  summed in log space term by term (log-add), i ascending
//   fractional a:  (§3.3) z0 = sigma^2 log(1/q - 1) + 1/2, and for i = 0, 1, 2, ... with
//                  c_i = C(a, i) the generalised binomial (may be negative) and j = a - i:
//                    s0_i = c_i q^i (1-q)^j exp((i^2-i)/(2 sigma^2)) erfc((i - z0)/(sqrt2 sigma)) / 2
//                    s1_i = c_i q^j (1-q)^i exp((j^2-j)/(2 sigma^2)) erfc((z0 - j)/(sqrt2 sigma)) / 2
//                  A0 += s0_i, A1 += s1_i (log-add when c_i > 0, log-subtract otherwise), stopping
//                  after the first i with max(log|s0_i|, log|s1_i|) < -30; A_a = A0 + A1
//
// Composition: RDP adds over steps (rdp * steps, and sums across different (q, sigma)).
//
// Conversion to (epsilon, delta), the one Opacus' get_privacy_spent uses (Balle et al. 2020,
// "Hypothesis testing interpretations and Rényi DP", Thm 21; Canonne, Kamath, Steinke 2020):
//
//   eps(a) = rdp(a) - (log delta + log a) / (a - 1) + log((a - 1) / a)
//
// and the reported epsilon is the smallest eps(a) over the orders, with that order (the first
// on ties, as numpy's argmin). Binomials come from the multiplicative recurrence
// C(a,i) = C(a,i-1) * ((a-i+1)/i) in binary64 (quotient first, so no overflow up to order
// 1024); log erfc is computed here without underflow (logErfc).
// Values agree with the Python libraries to ~1e-12 relative, not to the bit: the audit recomputes
// epsilon with this module (or compares at a tolerance), never by string equality of floats.

/** Opacus' RDPAccountant.DEFAULT_ALPHAS: 1.1, 1.2, ..., 10.9 (1 + x/10 in binary64), then 12..63. */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, k) => 1 + (k + 1) / 10),
  ...Array.from({ length: 52 }, (_, k) => 12 + k),
]);

/** The largest order accepted: beyond it the integer sum and the series cost more than they help. */
export const MAX_RDP_ORDER = 1024;
/** Bound on the terms of the fractional-order series, so a bad input cannot loop for ever. */
const MAX_SERIES_TERMS = 1_000_000;

/** log(exp(x) + exp(y)), with -Infinity standing for log 0. */
function logAdd(x: number, y: number): number {
  const a = Math.min(x, y);
  const b = Math.max(x, y);
  if (a === -Infinity) return b;
  return Math.log1p(Math.exp(a - b)) + b;
}

/** log(exp(x) - exp(y)) for x >= y. */
function logSub(x: number, y: number): number {
  if (x < y) throw new RangeError('rdp: the fractional-order series went negative (numerical failure)');
  if (y === -Infinity) return x;
  if (x === y) return -Infinity;
  const d = x - y;
  // expm1 overflows past ~709; there exp(y) is negligible beside exp(x).
  if (d > 700) return x;
  return Math.log(Math.expm1(d)) + y;
}

const SQRT_PI = Math.sqrt(Math.PI);

/** erfc(x) e^{x^2} for x >= 1 by the continued fraction 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))). */
function erfcxContinuedFraction(x: number): number {
  // Modified Lentz; converges for every x > 0, in a few dozen terms for x >= 1.
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 100_000; n++) {
    const a = n / 2;
    d = x + a * d;
    if (d === 0) d = tiny;
    d = 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return 1 / (SQRT_PI * f);
}

/** erf(x) by its Maclaurin series, for |x| < 1 (terms shrink fast, little cancellation). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / SQRT_PI) * sum;
}

/** log(erfc(x)) for any finite x, without underflow for large x (erfc(30) < 1e-392). */
export function logErfc(x: number): number {
  if (!Number.isFinite(x)) throw new RangeError(`logErfc: x must be finite, got ${x}`);
  if (x >= 1) return Math.log(erfcxContinuedFraction(x)) - x * x;
  if (x > -1) return Math.log1p(-erfSeries(x));
  // erfc(x) = 2 - erfc(-x); erfc(-x) <= erfc(1) here, so no cancellation.
  return Math.log(2 - erfcxContinuedFraction(-x) * Math.exp(-x * x));
}

function logAInteger(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  let logA = -Infinity;
  let binom = 1;
  for (let i = 0; i <= alpha; i++) {
    // Quotient first: binom * (alpha - i + 1) would overflow near the middle for orders near 1024.
    if (i > 0) binom *= (alpha - i + 1) / i;
    const s = Math.log(binom) + i * logQ + (alpha - i) * log1mQ + (i * i - i) / twoSigma2;
    logA = logAdd(logA, s);
  }
  return logA;
}

function logAFractional(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  let coef = 1;
  for (let i = 0; i < MAX_SERIES_TERMS; i++) {
    if (i > 0) coef *= (alpha - i + 1) / i;
    const logCoef = Math.log(Math.abs(coef));
    const j = alpha - i;
    const logT0 = logCoef + i * logQ + j * log1mQ;
    const logT1 = logCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / twoSigma2 + logE0;
    const logS1 = logT1 + (j * j - j) / twoSigma2 + logE1;
    if (coef > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) return logAdd(logA0, logA1);
  }
  throw new RangeError(`rdp: the series for order ${alpha} did not converge in ${MAX_SERIES_TERMS} terms`);
}

function checkRate(q: number): void {
  if (typeof q !== 'number' || !(q >= 0 && q <= 1))
    throw new RangeError(`q must be a number in [0, 1], got ${q}`);
}

function checkSigma(sigma: number): void {
  if (typeof sigma !== 'number' || !Number.isFinite(sigma) || sigma <= 0)
    throw new RangeError(`noiseMultiplier must be a finite number > 0, got ${sigma}`);
}

/** Checks a list of orders: each finite, 1 < order <= MAX_RDP_ORDER; at most 4096 of them. */
export function checkOrders(orders: readonly number[]): void {
  if (!Array.isArray(orders) || orders.length === 0 || orders.length > 4096)
    throw new RangeError('orders must be an array of 1 to 4096 numbers');
  orders.forEach((a, k) => {
    if (typeof a !== 'number' || !(a > 1 && a <= MAX_RDP_ORDER))
      throw new RangeError(`orders[${k}] must be a number in (1, ${MAX_RDP_ORDER}], got ${a}`);
  });
}

/** RDP of one step of the sampled Gaussian mechanism at one order (Mironov et al. 2019). */
export function rdpSampledGaussian(q: number, noiseMultiplier: number, order: number): number {
  checkRate(q);
  checkSigma(noiseMultiplier);
  checkOrders([order]);
  if (q === 0) return 0;
  if (q === 1) return order / (2 * noiseMultiplier * noiseMultiplier);
  const logA = Number.isInteger(order)
    ? logAInteger(q, noiseMultiplier, order)
    : logAFractional(q, noiseMultiplier, order);
  // RDP is never negative; at very large sigma the fractional series' log-space sums round to
  // about -1e-11, which would make privacySpent refuse the vector. Clamping is the true value's
  // nearest representable bound, and the same on every platform.
  return Math.max(0, logA / (order - 1));
}

export interface RdpInput {
  /** Sampling rate in [0, 1]. */
  q: number;
  /** Noise standard deviation over sensitivity, > 0. */
  noiseMultiplier: number;
  /** Number of steps (rounds) with these parameters: a non-negative safe integer. */
  steps: number;
  orders?: readonly number[];
}

/** RDP after `steps` steps at each order: rdp(q, sigma, a) * steps (TF Privacy's compute_rdp). */
export function computeRdp(input: RdpInput): number[] {
  const orders = input.orders ?? DEFAULT_RDP_ORDERS;
  checkOrders(orders);
  if (!Number.isSafeInteger(input.steps) || input.steps < 0)
    throw new RangeError(`steps must be a non-negative safe integer, got ${input.steps}`);
  return orders.map((a) => rdpSampledGaussian(input.q, input.noiseMultiplier, a) * input.steps);
}

export interface PrivacySpent {
  epsilon: number;
  /** The order that gave the smallest epsilon. */
  order: number;
}

/** Checks delta: a number in (0, 1). */
export function checkDelta(delta: number): void {
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1))
    throw new RangeError(`delta must be a number in (0, 1), got ${delta}`);
}

/** The smallest epsilon over the orders by the conversion in the header (Opacus' get_privacy_spent). */
export function privacySpent(orders: readonly number[], rdp: readonly number[], delta: number): PrivacySpent {
  checkOrders(orders);
  checkDelta(delta);
  if (!Array.isArray(rdp) || rdp.length !== orders.length)
    throw new RangeError(`rdp must be an array as long as orders (${orders.length})`);
  let best: PrivacySpent = { epsilon: Infinity, order: orders[0] };
  const logDelta = Math.log(delta);
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k];
    if (typeof rdp[k] !== 'number' || Number.isNaN(rdp[k]) || rdp[k] < 0)
      throw new RangeError(`rdp[${k}] must be a number >= 0, got ${rdp[k]}`);
    const eps = rdp[k] - (logDelta + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
    if (eps < best.epsilon) best = { epsilon: eps, order: a };
  }
  return best;
}
