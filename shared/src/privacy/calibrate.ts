// The noise multiplier for a target epsilon: the smallest sigma (to 4 significant digits, rounded
// up so the target holds) with which `rounds` rounds, each sampling at rate q, spend at most
// `epsilon` at `delta`, by the accountant (accountant.ts) itself. epsilon decreases as sigma grows
// at every order, so a bisection over sigma in [2^-10, 2^10] finds it; a target that even
// sigma = 2^10 misses is refused (far larger sigmas bring the fractional-order series of rdp.ts
// to rounding noise).

import { PrivacyAccountant } from './accountant.ts';
import { checkDelta, DEFAULT_RDP_ORDERS } from './rdp.ts';

export interface CalibrationInput {
  epsilon: number;
  delta: number;
  rounds: number;
  /** The sampling rate selected / eligible a round is expected to have, in (0, 1]. */
  sampleRate: number;
  orders?: readonly number[];
}

/** The epsilon spent at delta by `rounds` rounds at rate q with noise multiplier sigma. */
export function epsilonFor(input: Omit<CalibrationInput, 'epsilon'> & { noiseMultiplier: number }): number {
  const { delta, rounds, sampleRate, noiseMultiplier, orders = DEFAULT_RDP_ORDERS } = input;
  // A rate as a ratio of integers, since the accountant counts participants: q = m / 2^20.
  const eligible = 2 ** 20;
  const selected = Math.max(1, Math.round(sampleRate * eligible));
  const accountant = PrivacyAccountant.fromState({
    orders: orders.map(String),
    history: [{ selected, eligible, noiseMultiplier: String(noiseMultiplier), rounds }],
  });
  return accountant.spent(delta).epsilon;
}

/** The noise multiplier of the header. Throws RangeError naming the bad input. */
export function noiseMultiplierFor(input: CalibrationInput): number {
  const { epsilon, delta, rounds, sampleRate } = input;
  if (!(Number.isFinite(epsilon) && epsilon > 0))
    throw new RangeError(`epsilon must be a finite number > 0, got ${epsilon}`);
  checkDelta(delta);
  if (!Number.isSafeInteger(rounds) || rounds < 1)
    throw new RangeError(`rounds must be a whole number >= 1, got ${rounds}`);
  if (!(sampleRate > 0 && sampleRate <= 1))
    throw new RangeError(`the sample rate must be in (0, 1], got ${sampleRate}`);
  const fits = (sigma: number) => epsilonFor({ ...input, noiseMultiplier: sigma }) <= epsilon;
  let low = 2 ** -10;
  let high = 2 ** 10;
  if (!fits(high)) throw new RangeError(`no noise multiplier up to ${high} reaches epsilon ${epsilon}`);
  if (fits(low)) return low;
  while (high / low > 1 + 1e-6) {
    const mid = Math.sqrt(low * high);
    if (fits(mid)) high = mid;
    else low = mid;
  }
  // Four significant digits, rounded up, and checked: a printed sigma must keep the target.
  let sigma = Number(high.toPrecision(4));
  if (sigma < high) sigma = Number((sigma + 10 ** (Math.floor(Math.log10(sigma)) - 3)).toPrecision(4));
  return sigma;
}
