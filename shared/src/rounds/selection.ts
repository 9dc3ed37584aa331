// Which enrolled participants train in a round: a pure function of a seed that the round record
// carries, so the coordinator's choice can be re-derived by anyone holding the log.
//
//   ids        the eligible participant ids, deduplicated, in ascending UTF-8 byte order
//   n, k       n = number of ids; k = min(n, max(minimum, ceil(n * fraction))), computed exactly:
//              the fraction is taken as the exact rational value of its decimal string ("0.1" is
//              1/10, not the binary64 nearest to it); a number is first written as its shortest
//              round-trip decimal (ECMAScript Number::toString, Python's repr)
//   stream     block j (j = 0, 1, ...) = SHA-256("fedit/select/v1" || u64be(j) || UTF-8(seed)),
//              read as eight big-endian u32 words, blocks in order
//   uniform(m) the next word x with x < 2^32 - (2^32 mod m) (others are skipped), then x mod m
//   shuffle    for i = 0 .. k-1: j = i + uniform(n - i); swap ids[i] and ids[j]
//   selected   ids[0 .. k-1], sorted ascending by UTF-8 bytes
//
// When fewer than `minimum` participants are eligible, all of them are selected; whether that is
// enough to run a round is the coordinator's decision.

import { createHash } from 'node:crypto';
import { compareUtf8 } from '../aggregation/rule.ts';
import { RoundLogError } from './round-error.ts';

const DOMAIN = new TextEncoder().encode('fedit/select/v1');
const encoder = new TextEncoder();

/** The participants selected for a round; see the definition at the top of this file. */
export function selectParticipants(
  seed: string,
  eligible: readonly string[],
  fraction: number | string,
  minimum: number,
): string[] {
  if (typeof seed !== 'string' || seed.length === 0) {
    throw new RoundLogError('ROUND_SELECTION', 'the selection seed must be a non-empty string');
  }
  const ids = [...eligible].sort(compareUtf8);
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] === ids[i - 1]) {
      throw new RoundLogError('ROUND_SELECTION', `participant ${ids[i]} is listed twice among the eligible`);
    }
  }
  const count = selectionSize(ids.length, fraction, minimum);
  const stream = new WordStream(seed);
  for (let i = 0; i < count; i++) {
    const j = i + stream.uniform(ids.length - i);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return ids.slice(0, count).sort(compareUtf8);
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
  const text = typeof fraction === 'number' ? String(fraction) : fraction;
  const match = typeof text === 'string' ? DECIMAL.exec(text) : null;
  if (!match || Math.abs(Number(match[3] ?? 0)) > 400) {
    throw new RoundLogError(
      'ROUND_SELECTION',
      `the selection fraction must be a decimal number in (0, 1], got ${JSON.stringify(fraction)}`,
    );
  }
  const [, whole, decimals = '', exponent = '0'] = match;
  let numerator = BigInt(whole + decimals);
  let denominator = 10n ** BigInt(decimals.length);
  const e = Number(exponent);
  if (e >= 0) numerator *= 10n ** BigInt(e);
  else denominator *= 10n ** BigInt(-e);
  if (numerator <= 0n || numerator > denominator) {
    throw new RoundLogError(
      'ROUND_SELECTION',
      `the selection fraction must be in (0, 1], got ${JSON.stringify(fraction)}`,
    );
  }
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
