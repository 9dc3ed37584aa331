// Differential privacy at the edges of a round (the arithmetic and the accounting are shared:
// aggregation/dp-step.ts, rounds/privacy.ts):
//
//   open   the accountant the log gives, with the round about to open added at its (selected,
//          eligible), must stay within the budget; if not, no round opens and the federation
//          finishes, its finished record saying why. With central noise a fresh 32-byte seed is
//          drawn and written owner-only to noise/round-<n>.seed BEFORE the round-open record that
//          commits to it is appended (a crash in between leaves an unused seed; the restart aborts
//          the open round as for any round), so the noise is fixed before any update is seen.
//   close  the round-closed record's privacy account (rounds/privacy.ts: roundPrivacy).

import { randomBytes } from 'node:crypto';
import {
  dpOf,
  formatEpsilon,
  NOISE_SEED_BYTES,
  roundFits,
  roundPrivacy,
  writeNoiseSeed,
  type FederationConfig,
  type FederationState,
} from '@fedit/shared';

/**
 * Before round `round` opens with `selected` participants: why the federation finishes (a string)
 * when the round does not fit in the privacy budget; else the noise seed, when the coordinator adds
 * the noise (written to the folder already).
 */
export async function privacyAtOpen(
  o: { config: FederationConfig; ledger: { state: FederationState }; federationDir: string },
  round: number,
  selected: number,
): Promise<{ seed?: Uint8Array } | string> {
  const setting = dpOf(o.config);
  if (!setting) return {};
  const { state } = o.ledger;
  const accountant = state.privacyAccountant!;
  const sampled = { selected, eligible: state.eligibleParticipants().length };
  const { dp } = setting;
  if (!roundFits(accountant, dp, sampled)) {
    const spent = accountant.rounds === 0 ? 0 : accountant.spent(dp.delta).epsilon;
    return `privacy budget spent: ε = ${formatEpsilon(spent)} at δ = ${dp.delta} after ${accountant.rounds} round(s); one more round (${sampled.selected} of ${sampled.eligible} sampled) would exceed the budget ε = ${dp.epsilonBudget}`;
  }
  if (setting.noise !== 'central') return {};
  const seed = new Uint8Array(randomBytes(NOISE_SEED_BYTES));
  await writeNoiseSeed(o.federationDir, round, seed);
  return { seed };
}

/** The round-closed record's `privacy` field with differential privacy (nothing without). */
export function privacyAtClose(config: FederationConfig, state: FederationState, round: number) {
  const setting = dpOf(config);
  if (!setting) return {};
  const opened = state.rounds().get(round)!;
  const sampled = { selected: opened.selected.length, eligible: opened.eligible! };
  return { privacy: roundPrivacy(state.privacyAccountant!, setting, sampled).privacy };
}
