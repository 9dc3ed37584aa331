// What the federation learned, as its participants measured it: the example-weighted means of the
// held-out figures the counted updates signed (protocol/messages.ts heldOutFigures), which a
// round-closed record carries as `heldOut` and the audit recomputes from the recorded envelopes.
//
// Each participant k that sent figures with its counted update reports, for the global adapter
// the round trained from (globalAdapterIn, not the one the round produces):
//   n_k  its held-out examples (1..32), L_k its mean loss in micronats (an integer),
//   c_k  optionally, how many of those examples its greedy generation matched exactly.
// In the record's update order (ascending participant id), over the reports only:
//
//   K = number of updates with figures          N = n_1 + ... + n_K
//   S = n_1 * L_1 + ... + n_K * L_K             exact integers (bounded far below 2^53)
//   meanLoss   = roundHalfEven(S / N)           in micronats, written as a decimal string of nats
//                                               with exactly six decimals: 1234567 -> "1.234567"
//   over the reports that carry c_k only:
//   M = sum of their n_k                        C = sum of their c_k
//   exactMatch = roundHalfEven(C * 10^6 / M)    written the same way: 500000 -> "0.500000"
//
// Integer arithmetic throughout, so the order of summation cannot change the result and an
// auditor in any language reproduces the strings exactly. In Python, with q, r = divmod(a, b):
// q + (1 if 2*r > b or (2*r == b and q % 2 == 1) else 0); then f"{m // 10**6}.{m % 10**6:06d}".
// The record has no `heldOut` when no counted update sent figures (logs from before they existed
// still verify), and no exactMatch fields when no report carries c_k.

import { canonicalJson } from './canonical.ts';
import type { ReportProblem } from './problems.ts';
import type { CountedUpdate, RoundClosedBody } from './record.ts';

/** The held-out means of a round-closed record (its `heldOut`). */
export interface HeldOutMeans {
  /** How many counted updates carried figures. */
  reports: number;
  /** N: the held-out examples those figures describe. */
  examples: number;
  /** Example-weighted mean loss, nats, six decimals. */
  meanLoss: string;
  /** M: the held-out examples whose reports carry exact matches (absent when none does). */
  exactMatchExamples?: number;
  /** C / M, six decimals (absent when no report carries exact matches). */
  exactMatch?: string;
}

const MICRO = 1_000_000n;

/** The means of the figures the counted `updates` signed; undefined when none sent figures. */
export function heldOutMeans(updates: readonly Pick<CountedUpdate, 'envelope'>[]): HeldOutMeans | undefined {
  let reports = 0;
  let examples = 0n;
  let lossSum = 0n;
  let matchExamples = 0n;
  let matches = 0n;
  for (const { envelope } of updates) {
    const figures = envelope.heldOut;
    if (!figures) continue;
    reports++;
    examples += BigInt(figures.examples);
    lossSum += BigInt(figures.examples) * BigInt(figures.meanLossMicronats);
    if (figures.exactMatches !== undefined) {
      matchExamples += BigInt(figures.examples);
      matches += BigInt(figures.exactMatches);
    }
  }
  if (reports === 0) return undefined;
  return {
    reports,
    examples: Number(examples),
    meanLoss: microsText(divideHalfEven(lossSum, examples)),
    ...(matchExamples > 0n && {
      exactMatchExamples: Number(matchExamples),
      exactMatch: microsText(divideHalfEven(matches * MICRO, matchExamples)),
    }),
  };
}

/** a / b rounded to the nearest integer, ties to even; a >= 0, b > 0. */
export function divideHalfEven(a: bigint, b: bigint): bigint {
  const q = a / b;
  const twice = 2n * (a % b);
  return twice > b || (twice === b && q % 2n === 1n) ? q + 1n : q;
}

/** An integer count of millionths as a decimal string with six decimals (1234567n -> "1.234567"). */
export function microsText(micros: bigint): string {
  return `${micros / MICRO}.${(micros % MICRO).toString().padStart(6, '0')}`;
}

/** The round-closed record's `heldOut` is exactly the means of what its counted updates signed. */
export function checkHeldOutMeans(body: RoundClosedBody, problem: ReportProblem): void {
  const expected = heldOutMeans(body.updates);
  const recorded = body.heldOut;
  if (canonicalJson(expected ?? null) === canonicalJson(recorded ?? null)) return;
  problem(
    'HELD_OUT_MISMATCH',
    `records held-out means ${recorded === undefined ? '(none)' : canonicalJson(recorded)}, but the figures its counted updates signed give ${expected === undefined ? '(none)' : canonicalJson(expected)}`,
  );
}
