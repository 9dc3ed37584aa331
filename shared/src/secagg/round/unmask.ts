// Unmasking a secure round, the one computation the coordinator runs to close it and the auditor
// repeats from the log (rounds/recompute-secure.ts). With the plan (plan.ts), U2 (who shared, with
// their self-seed commitments), U3 (survivors) and D = U2 \ U3 (dropped):
//
//   refuse     |U3| < t (SECAGG_ABORT); a survivor with no survivor among its U2 neighbours
//              (SECAGG_EXPOSED: its only masks are b_i, which is revealed, and pair masks with the
//              dropped, whose keys are revealed, so its input would be exposed)
//   sum        Σ_(i∈U3) y_i mod 2^32
//   self       for i ∈ U3: b_i = reconstruct(the self shares of i revealed by i's holders, each at
//              its holder's position in H_i plus one); b_i must match i's commitment
//              (selfSeedCommitment, commitments.ts) or SECAGG_SHARES names i; subtract PRG(b_i)
//   keys       for d ∈ D with a neighbour in U3: sk_d = reconstruct(the key shares of d); X25519(sk_d)
//              must be d's advertised maskKey; remove d's pair masks with its U3 neighbours
//
// Only b_i of survivors and sk_d of the dropped are ever reconstructed: never both for one
// participant, so no individual input can be unmasked (the holders refuse to reveal both kinds).

import nacl from 'tweetnacl';
import { addModular } from '../prg.ts';
import { addMask } from '../prg.ts';
import { collectOwnerShares, removeDroppedMasks, type ShareReveal } from '../masking.ts';
import { SecAggError } from '../secagg-error.ts';
import { reconstructSecret } from '../shamir.ts';
import { selfSeedCommitment } from './commitments.ts';
import { holdersOf, type SecureRoundPlan } from './plan.ts';

/** What unmasking needs, in secure ids. */
export interface UnmaskInputs {
  plan: SecureRoundPlan;
  round: number;
  /** U2: the secure ids that shared, with their self-seed commitments (hex). */
  commitments: ReadonlyMap<number, string>;
  /** U3, ascending. */
  survivors: readonly number[];
  /** U2 \ U3, ascending. */
  dropped: readonly number[];
  reveals: readonly ShareReveal[];
  /** The masked input of a survivor (the caller loads and checks it). */
  masked: (id: number) => Uint32Array;
  /** Words of each masked input: L + 1. */
  length: number;
}

/** The survivors whose every U2 neighbour dropped (see the header); empty when none. */
export function exposedSurvivors(
  plan: SecureRoundPlan,
  shared: ReadonlySet<number> | ReadonlyMap<number, unknown>,
  survivors: readonly number[],
): number[] {
  const alive = new Set(survivors);
  return survivors.filter(
    (i) => !(plan.graph.get(i) ?? []).some((j) => j !== i && shared.has(j) && alive.has(j)),
  );
}

/** Throws SECAGG_ABORT or SECAGG_EXPOSED when the round must not be unmasked (see the header). */
export function checkUnmaskable(
  plan: SecureRoundPlan,
  shared: ReadonlySet<number> | ReadonlyMap<number, unknown>,
  survivors: readonly number[],
): void {
  if (survivors.length < plan.threshold)
    throw new SecAggError(
      'SECAGG_ABORT',
      `${survivors.length} masked inputs arrived, below the threshold ${plan.threshold}: the round aborts and nothing is revealed`,
    );
  const exposed = exposedSurvivors(plan, shared, survivors);
  if (exposed.length > 0)
    throw new SecAggError(
      'SECAGG_EXPOSED',
      `unmasking would expose the input of ${exposed.map((i) => plan.participants[i - 1]).join(', ')} (every neighbour it masked with dropped): the round aborts and nothing is revealed`,
    );
}

/** The U2 neighbours of `id` among `among`, with their mask keys. */
function maskPeers(inputs: UnmaskInputs, id: number, among: ReadonlySet<number>): [number, Uint8Array][] {
  return (inputs.plan.graph.get(id) ?? [])
    .filter((j) => among.has(j) && inputs.commitments.has(j))
    .map((j) => [j, inputs.plan.maskKeys.get(j) as Uint8Array]);
}

/** Σ_(i∈U3) x_i mod 2^32, as the header computes it; throws SecAggError naming what fails. */
export function unmaskSecureSum(inputs: UnmaskInputs): Uint32Array {
  const { plan, commitments, survivors, dropped, reveals, round } = inputs;
  checkUnmaskable(plan, commitments, survivors);
  const name = (id: number) => plan.participants[id - 1];
  const sum = new Uint32Array(inputs.length);
  for (const i of survivors) addModular(sum, inputs.masked(i));
  for (const i of survivors) {
    const shares = collectOwnerShares(holdersOf(plan, i), plan.threshold, i, reveals, 'self');
    const selfSeed = reconstructSecret(shares, plan.threshold);
    if (selfSeedCommitment(selfSeed) !== commitments.get(i))
      throw new SecAggError(
        'SECAGG_SHARES',
        `the self seed reconstructed for ${name(i)} does not match its commitment: a revealed self share of it is wrong`,
      );
    addMask(sum, selfSeed, -1);
  }
  const alive = new Set(survivors);
  for (const d of dropped) {
    const peers = maskPeers(inputs, d, alive);
    if (peers.length === 0) continue;
    const shares = collectOwnerShares(holdersOf(plan, d), plan.threshold, d, reveals, 'key');
    const secretKey = reconstructSecret(shares, plan.threshold);
    if (!nacl.verify(nacl.scalarMult.base(secretKey), plan.maskKeys.get(d) as Uint8Array))
      throw new SecAggError(
        'SECAGG_SHARES',
        `the mask key reconstructed for ${name(d)} is not its advertised maskKey: a revealed key share of it is wrong`,
      );
    removeDroppedMasks(sum, { id: d, secretKey }, peers, round);
  }
  return sum;
}
