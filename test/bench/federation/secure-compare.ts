// `npm run bench -- federation --secure`: the settings both runs share, the secure run's
// secureAggregation section, and the plain and secure runs side by side, per participant count.
// The goal: a secure round at 200 participants within 2x the plain round's coordinator
// time; SecAgg+ keeps a participant's cost polylogarithmic in n, so the growth from 50 to 200 to
// 1000 participants is printed too.

import type { FederationSettings } from '@fedit/coordinator';
import { mb, sum } from './round-stats.ts';
import type { ParticipantLine } from './messages.ts';
import type { RoundResult } from './round-stats.ts';

/**
 * The aggregation of both runs of a comparison: FedIT weighting with the weight capped (the cap is
 * W of the secure overflow condition) and fixed clipping (secure rounds refuse adaptive clipping,
 * which needs the median of the individual norms), so the two runs aggregate alike.
 */
export const COMPARED_AGGREGATION: FederationSettings['aggregation'] = {
  rule: 'fedit',
  weightCap: 16,
  clipping: { kind: 'fixed', bound: 10 },
};

/**
 * The secure run's section: SecAgg+ (each participant masks with O(log n) neighbours), t at 60 %
 * of the fewest share holders, deltas clipped to ±0.05 per coordinate (the bench's noise is
 * ±0.001) in 16 fractional bits, which with W = 16 leaves room for 2000 participants in 2^32.
 */
export function secureSection(n: number): NonNullable<FederationSettings['secureAggregation']> {
  return {
    graph: 'secagg+',
    thresholdFraction: 0.6,
    clipRange: 0.05,
    scaleBits: 16,
    maxParticipants: Math.max(2, n),
    phaseSeconds: 900,
  };
}

/** One run's figures for the table: its first round, and per participant. */
export function runSummary(
  round: RoundResult,
  results: Extract<ParticipantLine, { type: 'result' }>[],
  participants: number,
  rounds: number,
) {
  const ours = results.flatMap((r) => r.rounds.filter((x) => x.round === round.round));
  const sent = results.flatMap((r) =>
    r.rounds.filter((x) => x.round === round.round).map((x) => x.sentBytes ?? 0),
  );
  return {
    outcome: round.outcome,
    updates: round.updates,
    participant_errors: round.participant_errors,
    late_reveals: ours.filter((x) => x.lateReveal).length,
    round_wall_s: round.wall_s,
    coordinator_cpu_s: round.coordinator_cpu_s,
    coordinator_cpu_ms_per_update: round.coordinator_cpu_ms_per_update,
    crypto_verify_s: round.profile_s['crypto.verify'] ?? 0,
    // the participant processes' CPU from their first round:open to the end, per participant and round
    participant_cpu_ms_per_round:
      (1000 * sum(results.map((r) => r.roundsCpuUs / 1e6))) / participants / rounds,
    participant_sent_mb_per_round: mb(sum(sent) / Math.max(1, sent.length)),
  };
}

export type RunSummary = ReturnType<typeof runSummary>;

export interface Comparison {
  participants: number;
  plain: RunSummary;
  secure: RunSummary;
  /** secure / plain of the coordinator's CPU in the round (the goal: <= 2 at 200 participants). */
  coordinator_cpu_ratio: number;
  round_wall_ratio: number;
}

export function compare(participants: number, plain: RunSummary, secure: RunSummary): Comparison {
  return {
    participants,
    plain,
    secure,
    coordinator_cpu_ratio: secure.coordinator_cpu_s / plain.coordinator_cpu_s,
    round_wall_ratio: secure.round_wall_s / plain.round_wall_s,
  };
}

/** The side-by-side table for people, then the growth of the per-participant figures with n. */
export function formatComparisons(comparisons: Comparison[], machine: string): string {
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  const lines = [
    `plain vs secure (SecAgg+) federation round, on ${machine}:`,
    '      n | round s plain / secure | coord CPU s plain / secure (ratio) | coord ms/update plain / secure | participant CPU ms/round plain / secure | sent MB/participant plain / secure | errors',
  ];
  for (const c of comparisons) {
    const { plain: p, secure: s } = c;
    lines.push(
      `  ${String(c.participants).padStart(5)} | ${f(p.round_wall_s)} / ${f(s.round_wall_s)} | ${f(p.coordinator_cpu_s)} / ${f(s.coordinator_cpu_s)} (${f(c.coordinator_cpu_ratio)}x) | ` +
        `${f(p.coordinator_cpu_ms_per_update, 1)} / ${f(s.coordinator_cpu_ms_per_update, 1)} | ${f(p.participant_cpu_ms_per_round, 0)} / ${f(s.participant_cpu_ms_per_round, 0)} | ` +
        `${f(p.participant_sent_mb_per_round, 3)} / ${f(s.participant_sent_mb_per_round, 3)} | ${p.participant_errors + s.participant_errors}` +
        (s.outcome !== 'aggregated' || p.outcome !== 'aggregated'
          ? ` (plain ${p.outcome}, secure ${s.outcome})`
          : ''),
    );
  }
  const first = comparisons[0];
  for (const c of comparisons.slice(1))
    lines.push(
      `  ${first.participants} -> ${c.participants} participants (x${f(c.participants / first.participants, 1)}): secure participant CPU x${f(c.secure.participant_cpu_ms_per_round / first.secure.participant_cpu_ms_per_round)}, sent x${f(c.secure.participant_sent_mb_per_round / first.secure.participant_sent_mb_per_round)}; secure coordinator ms/update x${f(c.secure.coordinator_cpu_ms_per_update / first.secure.coordinator_cpu_ms_per_update)}`,
    );
  return lines.join('\n');
}
