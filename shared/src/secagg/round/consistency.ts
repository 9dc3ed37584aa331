// The consistency check of a secure round (Bonawitz et al. 2017, the malicious-coordinator
// protocol): after the secagg-unmask record and before anyone reveals a share, each survivor signs
// the one secagg-unmask record it was shown, {federation, round, participant, unmaskHash} under
// 'fedit/secagg-consistency/v1' (commitments.ts), and once per round. The coordinator gathers the
// signatures into a secagg-consistency record; a holder reveals only after judging that record
// against its own secagg-unmask record here.
//
// Why it closes equivocation: a coordinator that shows two different secagg-unmask records A and B
// (say owner j survived in A, dropped in B) needs t self shares of j from holders shown A and t key
// shares of j from holders shown B, all in H_j. Each honest holder signed only the record it was
// shown, so the signers of A and of B inside H_j are disjoint. The check asks, for every owner j
// whose shares are revealed, for at least quorum(j) = max(t, ⌊|H_j|/2⌋ + 1) valid signatures on the
// holder's own record from distinct survivors in H_j, and at least t in all: two disjoint sets of
// more than |H_j|/2 members of H_j cannot both exist, so at most one record of the two can pass at
// any honest holder of j. The condition: every member of H_j that signs is honest (a participant
// colluding with the coordinator signs both; with c of them in H_j the bound needs
// 2·quorum(j) − c > |H_j|). thresholdFraction ∈ (0.5, 1] makes t > min|H_i|/2 (secureThreshold), so
// with the complete graph (every |H_i| = |U1|) quorum(j) = t and the check asks for nothing the
// unmasking does not need already; with an irregular SecAgg+ graph the majority of a larger H_j can
// exceed t, and the check asks for that majority.

import { compareUtf8 } from '../../aggregation/rule.ts';
import { unhex, verifySecagg } from './commitments.ts';
import { holdersOf, type SecureRoundPlan } from './plan.ts';

export interface ConsistencyInputs {
  plan: SecureRoundPlan;
  federation: string;
  round: number;
  /** The hash of the secagg-unmask record this party holds. */
  unmaskHash: string;
  /** U3 and U2 \ U3 of that record, in secure ids. */
  survivors: readonly number[];
  dropped: readonly number[];
  /** The secagg-consistency record's signatures, sorted by participant, hex. */
  signatures: readonly { participant: string; signature: string }[];
  /** The enrolled Ed25519 key of a participant (undefined: not enrolled). */
  signingKey: (participant: string) => Uint8Array | undefined;
  /**
   * The owners whose shares this party reveals (a holder: itself and its neighbours); only the
   * signatures of their holders are checked and counted, so a holder's work grows with its degree.
   * Absent: every owner the unmasking needs (the collector, the audit).
   */
  owners?: readonly number[];
}

export type ConsistencyProblemCode = 'SECAGG_MEMBERSHIP' | 'SECAGG_SIGNATURE' | 'SECAGG_THRESHOLD';
export interface ConsistencyProblem {
  code: ConsistencyProblemCode;
  message: string;
}

/** The signatures an owner's reveal needs: max(t, ⌊|H_j|/2⌋ + 1) (see the header). */
export function consistencyQuorum(plan: SecureRoundPlan, owner: number): number {
  return Math.max(plan.threshold, Math.floor(holdersOf(plan, owner).length / 2) + 1);
}

/** The owners whose shares unmasking reveals: U3, and the dropped with a neighbour in U3. */
export function revealedOwners(
  plan: SecureRoundPlan,
  survivors: readonly number[],
  dropped: readonly number[],
): number[] {
  const alive = new Set(survivors);
  return [...survivors, ...dropped.filter((d) => (plan.graph.get(d) ?? []).some((j) => alive.has(j)))];
}

/** The valid signers (secure ids) and every problem of the signatures (see the header). */
export function judgeConsistency(i: ConsistencyInputs): {
  signers: Set<number>;
  problems: ConsistencyProblem[];
} {
  const { plan } = i;
  const problems: ConsistencyProblem[] = [];
  const alive = new Set(i.survivors);
  const owners = i.owners ?? revealedOwners(plan, i.survivors, i.dropped);
  const counted = new Set(owners.flatMap((j) => holdersOf(plan, j)));
  const signers = new Set<number>();
  i.signatures.forEach(({ participant, signature }, k) => {
    if (k > 0 && compareUtf8(i.signatures[k - 1].participant, participant) >= 0)
      problems.push({
        code: 'SECAGG_MEMBERSHIP',
        message: `signatures[${k}] (${participant}) is not after ${i.signatures[k - 1].participant}: sorted, once each`,
      });
    const id = plan.idOf.get(participant);
    if (id === undefined || !alive.has(id)) {
      problems.push({
        code: 'SECAGG_MEMBERSHIP',
        message: `signatures[${k}] is of ${participant}, who is not a survivor of the secagg-unmask record`,
      });
      return;
    }
    if (!counted.has(id) || signers.has(id)) return;
    const key = i.signingKey(participant);
    const context = { federation: i.federation, round: i.round, participant };
    const fields = { unmaskHash: i.unmaskHash };
    if (
      !key ||
      !/^[0-9a-f]{128}$/.test(signature) ||
      !verifySecagg('consistency', context, fields, key, unhex(signature))
    ) {
      problems.push({
        code: 'SECAGG_SIGNATURE',
        message: `signatures[${k}]: ${participant} did not sign this secagg-unmask record (${i.unmaskHash}) with its enrolled key`,
      });
      return;
    }
    signers.add(id);
  });
  const short = consistencyShortfall(plan, owners, signers);
  if (short !== undefined) problems.push({ code: 'SECAGG_THRESHOLD', message: short });
  return { signers, problems };
}

/** Why the signers do not let `owners`' shares be revealed, or undefined when they do. */
export function consistencyShortfall(
  plan: SecureRoundPlan,
  owners: readonly number[],
  signers: ReadonlySet<number>,
): string | undefined {
  if (signers.size < plan.threshold)
    return `${signers.size} survivors signed the secagg-unmask record, below the threshold ${plan.threshold}: nothing may be revealed`;
  for (const j of owners) {
    const have = holdersOf(plan, j).filter((h) => signers.has(h)).length;
    const need = consistencyQuorum(plan, j);
    if (have < need)
      return `${have} of ${plan.participants[j - 1]}'s share holders signed the secagg-unmask record, below the ${need} its shares need: nothing may be revealed`;
  }
  return undefined;
}
