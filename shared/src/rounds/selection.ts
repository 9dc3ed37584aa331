// Which participants train in a round: a pure function of a seed and the candidates that the round
// record carries, so the coordinator's choice can be re-derived by anyone holding the log.
//
//   ids        the candidate participant ids, deduplicated, in ascending UTF-8 byte order: those
//              who said they are ready (selection.ready, recorded since readiness), else, in
//              logs written before it, the eligible (enrolled, not revoked) participants
//   n, k       n = number of ids; the target k = min(n, max(minimum, ceil(n * fraction)))
//   s          the number selected, over-selected (Bonawitz et al. 2019, "Towards Federated
//              Learning at Scale": select ~130% of the target, close at the target):
//              s = min(n, ceil(k * overSelection)); overSelection is 1 when the record has none
//              (logs written before over-selection), and then s = k; the coordinator records
//              the config's factor, or DEFAULT_OVER_SELECTION (1.3) when it sets none
//              Every product is computed exactly: the fraction and the over-selection factor are
//              taken as the exact rational values of their decimal strings ("0.1" is 1/10, "1.3"
//              is 13/10, not the binary64 nearest to them); a number is first written as its
//              shortest round-trip decimal (ECMAScript Number::toString, Python's repr)
//   stream     block j (j = 0, 1, ...) = SHA-256("fedit/select/v1" || u64be(j) || UTF-8(seed)),
//              read as eight big-endian u32 words, blocks in order
//   uniform(m) the next word x with x < 2^32 - (2^32 mod m) (others are skipped), then x mod m
//   shuffle    for i = 0 .. s-1: j = i + uniform(n - i); swap ids[i] and ids[j]
//   selected   ids[0 .. s-1], sorted ascending by UTF-8 bytes
//   quorum     the updates at which the round closes: min(s, q), q = the config's
//              participantsPerRound.quorum, or k when it sets none (roundQuorum)
//
// When fewer than `minimum` participants are candidates, all of them are selected; whether that is
// enough to run a round is the coordinator's decision.

import { createHash } from 'node:crypto';
import { compareUtf8 } from '../aggregation/rule.ts';
import { DEFAULT_OVER_SELECTION } from '../federation/config.ts';
import { RoundLogError } from './round-error.ts';
import { seedFromReveal } from './seed-chain.ts';

const DOMAIN = new TextEncoder().encode('fedit/select/v1');
const encoder = new TextEncoder();

/** The participants selected for a round; see the definition at the top of this file. */
export function selectParticipants(
  seed: string,
  candidates: readonly string[],
  fraction: number | string,
  minimum: number,
  overSelection: number | string = 1,
): string[] {
  if (typeof seed !== 'string' || seed.length === 0) {
    throw new RoundLogError('ROUND_SELECTION', 'the selection seed must be a non-empty string');
  }
  const ids = [...candidates].sort(compareUtf8);
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] === ids[i - 1]) {
      throw new RoundLogError(
        'ROUND_SELECTION',
        `participant ${ids[i]} is listed twice among the candidates`,
      );
    }
  }
  const count = overSelectedSize(selectionSize(ids.length, fraction, minimum), ids.length, overSelection);
  const stream = new WordStream(seed);
  for (let i = 0; i < count; i++) {
    const j = i + stream.uniform(ids.length - i);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return ids.slice(0, count).sort(compareUtf8);
}

/** How a federation's config says its rounds select (its participantsPerRound). */
export interface SelectionSettings {
  fraction: number | string;
  minimum: number;
  /** Absent: DEFAULT_OVER_SELECTION. */
  overSelection?: number | string;
  /** Absent: the round's target k. */
  quorum?: number;
}

/**
 * A round's selection as its round-open record writes it, drawn from the `ready` participants,
 * and the quorum at which the round closes; see the definition at the top. The seed is `seed`,
 * or, given `{ reveal }` (a federation that committed to a seed chain), the seed that value of
 * the chain fixes (seed-chain.ts), and the record carries the reveal.
 */
export function drawSelection(
  source: string | { reveal: string },
  ready: readonly string[],
  settings: SelectionSettings,
): {
  selection: {
    seed: string;
    fraction: string;
    minimum: number;
    overSelection: string;
    ready: string[];
    selected: string[];
    reveal?: string;
  };
  quorum: number;
} {
  const seed = typeof source === 'string' ? source : seedFromReveal(source.reveal);
  const overSelection = factorString(settings.overSelection ?? DEFAULT_OVER_SELECTION);
  const candidates = [...ready].sort(compareUtf8);
  const selected = selectParticipants(seed, candidates, settings.fraction, settings.minimum, overSelection);
  const target = selectionSize(candidates.length, settings.fraction, settings.minimum);
  return {
    selection: {
      seed,
      fraction: fractionString(settings.fraction),
      minimum: settings.minimum,
      overSelection,
      ready: candidates,
      selected,
      ...(typeof source !== 'string' && { reveal: source.reveal }),
    },
    quorum: roundQuorum(target, selected.length, settings.quorum),
  };
}

/** k = min(n, max(minimum, ceil(n * fraction))), with the fraction's decimal value taken exactly. */
export function selectionSize(eligible: number, fraction: number | string, minimum: number): number {
  if (!Number.isSafeInteger(minimum) || minimum < 0) {
    throw new RoundLogError(
      'ROUND_SELECTION',
      `the minimum number of participants must be a non-negative integer, got ${minimum}`,
    );
  }
  const { numerator, denominator } = parseFraction(fraction);
  const n = BigInt(eligible);
  const share = (n * numerator + denominator - 1n) / denominator;
  const wanted = share > BigInt(minimum) ? share : BigInt(minimum);
  return Number(wanted < n ? wanted : n);
}

/** s = min(n, ceil(k * overSelection)), the factor's decimal value taken exactly (>= 1). */
export function overSelectedSize(target: number, candidates: number, overSelection: number | string): number {
  const { numerator, denominator } = parseDecimal(overSelection, 'over-selection factor', 'at least 1');
  if (numerator < denominator) {
    throw new RoundLogError(
      'ROUND_SELECTION',
      `the over-selection factor must be at least 1, got ${JSON.stringify(overSelection)}`,
    );
  }
  const s = (BigInt(target) * numerator + denominator - 1n) / denominator;
  return Number(s < BigInt(candidates) ? s : BigInt(candidates));
}

/** The updates at which a round of `selected` participants and target `target` closes. */
export function roundQuorum(target: number, selected: number, quorum?: number): number {
  return Math.min(selected, quorum ?? target);
}

/**
 * The plain decimal string of a decimal such as an over-selection factor, as round records carry
 * it: 1.3 -> "1.3", 2 -> "2". Same value as selectParticipants takes the factor to have.
 */
export function factorString(factor: number | string): string {
  const { numerator, denominator } = parseDecimal(factor, 'over-selection factor', 'at least 1');
  const whole = numerator / denominator;
  const rest = numerator % denominator;
  if (rest === 0n) return whole.toString();
  // rest / denominator with denominator = 10^d: d digits, trailing zeros dropped.
  const digits = rest
    .toString()
    .padStart(denominator.toString().length - 1, '0')
    .replace(/0+$/, '');
  return `${whole}.${digits}`;
}

/**
 * The plain decimal string of a selection fraction, as round records carry it: 0.1 -> "0.1",
 * 1e-7 -> "0.0000001", 1 -> "1". Same value as selectParticipants takes the fraction to have.
 */
export function fractionString(fraction: number | string): string {
  const { numerator, denominator } = parseFraction(fraction);
  if (numerator === denominator) return '1';
  // Reduce to n / 10^d with the fewest digits d.
  let n = numerator;
  let d = denominator;
  while (n % 10n === 0n && d % 10n === 0n) {
    n /= 10n;
    d /= 10n;
  }
  const digits = d.toString().length - 1;
  return `0.${n.toString().padStart(digits, '0')}`;
}

const DECIMAL = /^(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

function parseFraction(fraction: number | string): { numerator: bigint; denominator: bigint } {
  const { numerator, denominator } = parseDecimal(fraction, 'selection fraction', 'in (0, 1]');
  if (numerator <= 0n || numerator > denominator) {
    throw new RoundLogError(
      'ROUND_SELECTION',
      `the selection fraction must be in (0, 1], got ${JSON.stringify(fraction)}`,
    );
  }
  return { numerator, denominator };
}

/** A non-negative decimal's exact value numerator / denominator (a power of ten). */
function parseDecimal(
  value: number | string,
  what: string,
  range: string,
): { numerator: bigint; denominator: bigint } {
  const text = typeof value === 'number' ? String(value) : value;
  const match = typeof text === 'string' ? DECIMAL.exec(text) : null;
  if (!match || Math.abs(Number(match[3] ?? 0)) > 400) {
    throw new RoundLogError(
      'ROUND_SELECTION',
      `the ${what} must be a decimal number ${range}, got ${JSON.stringify(value)}`,
    );
  }
  const [, whole, decimals = '', exponent = '0'] = match;
  let numerator = BigInt(whole + decimals);
  let denominator = 10n ** BigInt(decimals.length);
  const e = Number(exponent);
  if (e >= 0) numerator *= 10n ** BigInt(e);
  else denominator *= 10n ** BigInt(-e);
  return { numerator, denominator };
}

/** The SHA-256 counter stream of u32 words, and unbiased integers drawn from it. */
class WordStream {
  readonly #seed: Uint8Array;
  #block = 0;
  #words: number[] = [];

  constructor(seed: string) {
    this.#seed = encoder.encode(seed);
  }

  uniform(m: number): number {
    const limit = 2 ** 32 - (2 ** 32 % m);
    for (;;) {
      const x = this.#next();
      if (x < limit) return x % m;
    }
  }

  #next(): number {
    if (this.#words.length === 0) {
      const counter = new Uint8Array(8);
      new DataView(counter.buffer).setBigUint64(0, BigInt(this.#block++), false);
      const digest = createHash('sha256').update(DOMAIN).update(counter).update(this.#seed).digest();
      for (let i = 0; i < 32; i += 4) this.#words.push(digest.readUInt32BE(i));
    }
    return this.#words.shift()!;
  }
}
