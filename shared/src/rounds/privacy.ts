// Differential privacy in the round log: what each round-closed record's `privacy` says, computed
// by one function for the coordinator (which writes it) and the verifier (which recomputes it from
// the log alone), the budget rule, and the line participants are shown.
//
//   sampled          { selected: the round-open record's selected count, eligible: participants
//                    eligible when it opened } (q = selected / eligible, docs/privacy.md)
//   noiseMultiplier  String(sigma), clipNorm String(C), delta String(delta), from the config
//   history          PrivacyAccountant.toState().history after adding this round to the rounds
//                    closed before it (aborted rounds publish nothing and spend nothing)
//   epsilon          String(spent(delta).epsilon) after this round; epsilonRound String(epsilon
//                    after - epsilon before) (binary64 subtraction; 0 before the first round)
//   noise            "central" (the coordinator adds it) or "distributed" (secure aggregation)
//
// A round counts at its selected participants, whether or not all of them were counted: the
// sampling is what the accountant models. The budget: a round may open only if the accountant,
// with this round added at its (selected, eligible), stays within epsilonBudget at delta; the
// verifier checks each round-open record against that rule (PRIVACY_BUDGET). A federation may
// finish before its configured rounds only when one more round sampling every eligible participant
// would exceed the budget (budgetSpent; rules-lifecycle.ts's FINISHED_MISMATCH otherwise).

import type { DifferentialPrivacyConfig } from '../federation/dp-config.ts';
import { dpOrders } from '../federation/dp-config.ts';
import type { FederationConfig } from '../federation/config.ts';
import { PrivacyAccountant, type AccountantEntry } from '../privacy/accountant.ts';
import { canonicalJson } from './canonical.ts';
import type { ReportProblem } from './problems.ts';
import type { RoundRecord } from './record.ts';
import type { FederationState } from './state.ts';

export interface RoundPrivacy {
  noise: 'central' | 'distributed';
  sampled: { selected: number; eligible: number };
  noiseMultiplier: string;
  clipNorm: string;
  delta: string;
  epsilonRound: string;
  epsilon: string;
  history: AccountantEntry[];
}

/** The federation's DP setting and where its noise is added; undefined without DP. */
export function dpOf(
  config: FederationConfig | undefined,
): { dp: DifferentialPrivacyConfig; noise: 'central' | 'distributed' } | undefined {
  const dp = config?.differentialPrivacy;
  if (!dp) return undefined;
  // The secure-aggregation section (secagg) moves the noise to the participants.
  const secure = (config as { secureAggregation?: unknown }).secureAggregation !== undefined;
  return { dp, noise: secure ? 'distributed' : 'central' };
}

/** A fresh accountant for the federation's orders. */
export function newAccountant(dp: DifferentialPrivacyConfig): PrivacyAccountant {
  return new PrivacyAccountant(dpOrders(dp));
}

/** The accountant after `before` plus one round (a copy: `before` is not changed). */
export function withRound(
  before: PrivacyAccountant,
  dp: DifferentialPrivacyConfig,
  sampled: { selected: number; eligible: number },
): PrivacyAccountant {
  const after = PrivacyAccountant.fromState(before.toState());
  after.addRound({ ...sampled, noiseMultiplier: dp.noiseMultiplier });
  return after;
}

/** The `privacy` of a round-closed record (header); throws RangeError on impossible counts. */
export function roundPrivacy(
  before: PrivacyAccountant,
  setting: { dp: DifferentialPrivacyConfig; noise: 'central' | 'distributed' },
  sampled: { selected: number; eligible: number },
): { privacy: RoundPrivacy; after: PrivacyAccountant } {
  const { dp, noise } = setting;
  const after = withRound(before, dp, sampled);
  const epsilon = after.spent(dp.delta).epsilon;
  const previous = before.rounds === 0 ? 0 : before.spent(dp.delta).epsilon;
  const privacy: RoundPrivacy = {
    noise,
    sampled: { selected: sampled.selected, eligible: sampled.eligible },
    noiseMultiplier: String(dp.noiseMultiplier),
    clipNorm: String(dp.clipNorm),
    delta: String(dp.delta),
    epsilonRound: String(epsilon - previous),
    epsilon: String(epsilon),
    history: after.toState().history,
  };
  return { privacy, after };
}

/** Whether one more round at `sampled` keeps the spent epsilon within the budget (no budget: yes). */
export function roundFits(
  accountant: PrivacyAccountant,
  dp: DifferentialPrivacyConfig,
  sampled: { selected: number; eligible: number },
): boolean {
  if (dp.epsilonBudget === undefined) return true;
  return withRound(accountant, dp, sampled).spent(dp.delta).epsilon <= dp.epsilonBudget;
}

/**
 * Whether the log allows the federation to finish early for its privacy budget: one more round
 * sampling every eligible participant (the most a round can spend; epsilon grows with q) would
 * exceed it. The coordinator finishes when the round it drew does not fit, which implies this.
 */
export function budgetSpent(state: FederationState): boolean {
  const setting = dpOf(state.config);
  const accountant = state.privacyAccountant;
  const eligible = state.eligibleParticipants().length;
  if (!setting || setting.dp.epsilonBudget === undefined || !accountant || eligible === 0) return false;
  return !safeFits(accountant, setting.dp, { selected: eligible, eligible });
}

/** epsilon written for people: rounded up to 3 decimals, so the line never says less than spent. */
export function formatEpsilon(epsilon: number): string {
  return String(Math.ceil(epsilon * 1000) / 1000);
}

/** What the participant last verified of the privacy spent: a round-closed record's epsilon. */
export interface PrivacySeen {
  /** The record's privacy.epsilon (a decimal string). */
  epsilon: string;
  /** The round it closed. */
  round: number;
}

/**
 * What participants are shown: "privacy spent so far: ε = X at δ = Y (budget Z), after round N",
 * or "no differential privacy" when the config has none. `seen` is the newest round-closed record
 * the participant verified; without one, no DP round has closed as far as it knows.
 */
export function privacyLine(config: FederationConfig | undefined, seen: PrivacySeen | undefined): string {
  const dp = config?.differentialPrivacy;
  if (!dp) return 'no differential privacy: the shared adapters carry no noise';
  const budget = dp.epsilonBudget === undefined ? 'no budget' : `budget ${dp.epsilonBudget}`;
  const where = seen ? `after round ${seen.round}` : 'the coordinator has shown no closed round yet';
  const epsilon = seen ? formatEpsilon(Number(seen.epsilon)) : '0';
  return `privacy spent so far: ε = ${epsilon} at δ = ${dp.delta} (${budget}), ${where}`;
}

/** The privacy rules of a round-open or round-closed record, judged against the fold before it. */
export function checkPrivacyRules(record: RoundRecord, state: FederationState, problem: ReportProblem): void {
  if (record.kind !== 'round-open' && record.kind !== 'round-closed') return;
  const setting = dpOf(state.config);
  if (record.kind === 'round-open') {
    if (!setting) return;
    if (setting.noise === 'central' && record.body.noiseCommitment === undefined)
      problem(
        'NOISE_COMMITMENT',
        'the federation adds central DP noise, but the round-open record commits to no noise seed (noiseCommitment), so the coordinator could choose the noise after seeing the updates',
      );
    const sampled = {
      selected: record.body.selection.selected.length,
      eligible: state.eligibleParticipants().length,
    };
    const accountant = state.privacyAccountant;
    if (accountant && sampled.eligible > 0 && !safeFits(accountant, setting.dp, sampled))
      problem(
        'PRIVACY_BUDGET',
        `opening this round (${sampled.selected} of ${sampled.eligible} sampled) spends more than the federation's privacy budget ε = ${setting.dp.epsilonBudget} at δ = ${setting.dp.delta}`,
      );
    return;
  }
  const recorded = record.body.privacy;
  if (!setting) {
    if (recorded !== undefined)
      problem(
        'PRIVACY_MISMATCH',
        "records a privacy account, but the federation's config has no differentialPrivacy",
      );
    return;
  }
  const opened = state.rounds().get(record.round);
  const accountant = state.privacyAccountant;
  if (!opened || opened.eligible === undefined || !accountant) return; // the lifecycle rules say why
  let expected: RoundPrivacy;
  try {
    expected = roundPrivacy(accountant, setting, {
      selected: opened.selected.length,
      eligible: opened.eligible,
    }).privacy;
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    problem('PRIVACY_MISMATCH', `the round's privacy cannot be accounted: ${err.message}`);
    return;
  }
  if (recorded === undefined || canonicalJson(recorded) !== canonicalJson(expected))
    problem(
      'PRIVACY_MISMATCH',
      `records privacy ${recorded === undefined ? '(none)' : canonicalJson(recorded)}, but the accountant gives ${canonicalJson(expected)} from the log`,
    );
}

function safeFits(
  accountant: PrivacyAccountant,
  dp: DifferentialPrivacyConfig,
  sampled: { selected: number; eligible: number },
): boolean {
  try {
    return roundFits(accountant, dp, sampled);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    return false;
  }
}
