// The federation's privacy accountant: client-level DP-FedAvg rounds composed under Rényi DP.
//
// Each round selects `selected` of `eligible` participants (sampling rate q = selected/eligible,
// treated as Poisson sampling at that rate, as Opacus and TF Privacy do for DP-SGD) and the
// aggregate carries Gaussian noise of standard deviation noiseMultiplier * C for clip bound C.
// The accountant keeps the history of rounds, consecutive rounds with the same (selected,
// eligible, noiseMultiplier) merged into one entry with a count, and the orders.
//
// Arithmetic fixed for the audit: total[a] = (((0 + r_1[a] * n_1) + r_2[a] * n_2) + ...) over the
// history entries in order, r_e[a] = rdpSampledGaussian(selected/eligible, noiseMultiplier, a) and
// n_e the entry's rounds (binary64; a merged run is one product, never n repeated additions), and
// spent(delta) = privacySpent(orders, total, delta) (rdp.ts). q is the binary64 quotient of two
// integers; noiseMultiplier and the orders are held as decimal strings (a record holds no floats,
// see rounds/record.ts) and parsed with Number(): the shortest round-trip decimal of a binary64, so
// toState() -> fromState() reproduces every input bit for bit and an auditor recomputes epsilon
// after each round from the logged state alone.

import {
  checkDelta,
  checkOrders,
  DEFAULT_RDP_ORDERS,
  privacySpent,
  rdpSampledGaussian,
  type PrivacySpent,
} from './rdp.ts';

/** One run of rounds with the same parameters. */
export interface AccountantEntry {
  /** Participants selected in each of these rounds: an integer, 0 <= selected <= eligible. */
  selected: number;
  /** Participants eligible for selection: an integer >= 1. */
  eligible: number;
  /** Noise standard deviation over the clip bound, as a decimal string ("1.1"). */
  noiseMultiplier: string;
  /** How many consecutive rounds ran with these parameters: an integer >= 1. */
  rounds: number;
}

/** The accountant's serialisable state: decimal strings and integers only. */
export interface AccountantState {
  orders: string[];
  history: AccountantEntry[];
}

/** The bound on history entries, so a hostile state cannot make the audit allocate without limit. */
export const MAX_ACCOUNTANT_ENTRIES = 100_000;
const MAX_COUNT = 2 ** 31 - 1;
// A decimal as Number() reads it and String() writes it back: digits, optional fraction, optional exponent.
const DECIMAL = /^(?:0|[1-9]\d*)(?:\.\d+)?(?:e[+-]?\d+)?$/;

function parseDecimal(text: unknown, field: string): number {
  if (typeof text !== 'string' || text.length > 32 || !DECIMAL.test(text))
    throw new RangeError(`${field} must be a decimal string, got ${JSON.stringify(text)}`);
  const value = Number(text);
  // Only the canonical spelling, so one value has one encoding in the log.
  if (String(value) !== text)
    throw new RangeError(`${field} must be written as ${String(value)}, got ${text}`);
  return value;
}

function checkCount(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_COUNT)
    throw new RangeError(`${field} must be an integer in [${min}, ${MAX_COUNT}], got ${String(value)}`);
  return value;
}

export interface RoundParameters {
  selected: number;
  eligible: number;
  /** Noise multiplier as a number (> 0, finite); stored as String(noiseMultiplier). */
  noiseMultiplier: number;
}

function checkRound(p: RoundParameters, field: string): void {
  checkCount(p.eligible, `${field}.eligible`, 1);
  checkCount(p.selected, `${field}.selected`, 0);
  if (p.selected > p.eligible)
    throw new RangeError(
      `${field}.selected (${p.selected}) must not exceed ${field}.eligible (${p.eligible})`,
    );
  const s = p.noiseMultiplier;
  if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0)
    throw new RangeError(`${field}.noiseMultiplier must be a finite number > 0, got ${String(s)}`);
}

export class PrivacyAccountant {
  readonly #orders: readonly number[];
  readonly #history: AccountantEntry[] = [];
  // RDP per order of every entry but the last, and the last entry's per-round RDP: the total is
  // base + perRound * last.rounds, so a merged run is one product, as fromState computes it.
  #base: number[];
  #lastPerRound: number[];

  constructor(orders: readonly number[] = DEFAULT_RDP_ORDERS) {
    checkOrders(orders);
    this.#orders = Object.freeze([...orders]);
    this.#base = orders.map(() => 0);
    this.#lastPerRound = orders.map(() => 0);
  }

  /** Rebuilds an accountant from a logged state, validating every field. */
  static fromState(state: AccountantState): PrivacyAccountant {
    if (typeof state !== 'object' || state === null) throw new RangeError('state must be an object');
    if (!Array.isArray(state.orders) || state.orders.length === 0 || state.orders.length > 4096)
      throw new RangeError('state.orders must be an array of 1 to 4096 decimal strings');
    if (!Array.isArray(state.history) || state.history.length > MAX_ACCOUNTANT_ENTRIES)
      throw new RangeError(`state.history must be an array of at most ${MAX_ACCOUNTANT_ENTRIES} entries`);
    const accountant = new PrivacyAccountant(
      state.orders.map((o, k) => parseDecimal(o, `state.orders[${k}]`)),
    );
    state.history.forEach((e, k) => {
      const field = `state.history[${k}]`;
      if (typeof e !== 'object' || e === null) throw new RangeError(`${field} must be an object`);
      const rounds = checkCount(e.rounds, `${field}.rounds`, 1);
      const prev = state.history[k - 1];
      if (
        prev &&
        prev.selected === e.selected &&
        prev.eligible === e.eligible &&
        prev.noiseMultiplier === e.noiseMultiplier
      )
        throw new RangeError(`${field} repeats the parameters of the entry before it (runs are merged)`);
      const noiseMultiplier = parseDecimal(e.noiseMultiplier, `${field}.noiseMultiplier`);
      accountant.#add({ selected: e.selected, eligible: e.eligible, noiseMultiplier }, rounds, field);
    });
    return accountant;
  }

  /** Records one round with these parameters. */
  addRound(round: RoundParameters): void {
    this.#add(round, 1, 'round');
  }

  #add(round: RoundParameters, rounds: number, field: string): void {
    checkRound(round, field);
    const q = round.selected / round.eligible;
    const text = String(round.noiseMultiplier);
    const last = this.#history.at(-1);
    if (
      last &&
      last.selected === round.selected &&
      last.eligible === round.eligible &&
      last.noiseMultiplier === text
    ) {
      if (last.rounds + rounds > MAX_COUNT)
        throw new RangeError(`${field}: more than ${MAX_COUNT} rounds in one entry`);
      last.rounds += rounds;
    } else {
      if (this.#history.length >= MAX_ACCOUNTANT_ENTRIES)
        throw new RangeError(`the accountant holds at most ${MAX_ACCOUNTANT_ENTRIES} entries`);
      this.#base = this.#total();
      this.#lastPerRound = this.#orders.map((a) => rdpSampledGaussian(q, round.noiseMultiplier, a));
      this.#history.push({
        selected: round.selected,
        eligible: round.eligible,
        noiseMultiplier: text,
        rounds,
      });
    }
  }

  #total(): number[] {
    const rounds = this.#history.at(-1)?.rounds ?? 0;
    return this.#base.map((b, k) => b + this.#lastPerRound[k] * rounds);
  }

  /** Rounds recorded so far. */
  get rounds(): number {
    return this.#history.reduce((n, e) => n + e.rounds, 0);
  }

  /** The RDP spent so far at each order (a copy). */
  rdp(): number[] {
    return this.#total();
  }

  /** The (epsilon, delta) spent so far: the best order by Opacus' conversion. */
  spent(delta: number): PrivacySpent {
    return privacySpent(this.#orders, this.#total(), delta);
  }

  /**
   * How many more rounds with these parameters keep the spent epsilon within `budget` at `delta`:
   * the largest n >= 0 with spent-after-n <= budget (0 when already over), up to `limit`.
   * Epsilon grows with n at every order, so the search is exponential then binary.
   */
  roundsUntil(budget: number, delta: number, next: RoundParameters, limit = 1_000_000): number {
    if (typeof budget !== 'number' || !Number.isFinite(budget) || budget <= 0)
      throw new RangeError(`budget must be a finite number > 0, got ${budget}`);
    checkDelta(delta);
    checkRound(next, 'next');
    checkCount(limit, 'limit', 0);
    const q = next.selected / next.eligible;
    const perRound = this.#orders.map((a) => rdpSampledGaussian(q, next.noiseMultiplier, a));
    const total = this.#total();
    const fits = (n: number) =>
      privacySpent(
        this.#orders,
        total.map((t, k) => t + perRound[k] * n),
        delta,
      ).epsilon <= budget;
    if (!fits(0)) return 0;
    if (fits(limit)) return limit;
    let low = 0; // fits
    let high = 1; // to find: does not fit
    while (high < limit && fits(high)) {
      low = high;
      high = Math.min(limit, high * 2);
    }
    while (high - low > 1) {
      const mid = Math.floor((low + high) / 2);
      if (fits(mid)) low = mid;
      else high = mid;
    }
    return low;
  }

  /** The state to log: orders and history as decimal strings and integers. */
  toState(): AccountantState {
    return { orders: this.#orders.map((a) => String(a)), history: this.#history.map((e) => ({ ...e })) };
  }
}
