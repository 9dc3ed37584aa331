// A participant's own LoRA rank: one with less memory trains rank r_k < r, the federation's rank,
// under a rule that aggregates such updates exactly (product-svd; ruleTakesLowerRanks). Chosen with
// `client join --rank` or `client run --rank` and kept in the membership file.
//
// Each round it trains from the global adapter truncated to r_k (truncateAdapterRank: the top r_k
// components, B scaled by r_k / r so that PEFT's scale alpha / r_k gives the same delta), with the
// federation's alpha and a LoRA of rank r_k, so its trainer, optimizer state and graphs are those of
// rank r_k, and uploads rank-r_k tensors. The coordinator aggregates them at scale alpha / r_k.
import {
  adapterSchema,
  aggregationRuleNames,
  ruleTakesLowerRanks,
  schemaAtRank,
  truncateAdapterRank,
  type FederationConfig,
  type Tensor,
} from '@fedit/shared';
import { FederationError } from './errors.ts';

/**
 * The rank this participant trains in a federation with `settings`: `chosen` when given, else the
 * federation's. Throws FederationError FEDERATION_RANK, naming `field`, when `chosen` is not a
 * whole number in 1..r, or is below r under a rule that takes only the federation's rank.
 */
export function participantRank(
  settings: Pick<FederationConfig, 'id' | 'lora' | 'aggregation'>,
  chosen: number | undefined,
  field = 'rank',
): number {
  const federationRank = settings.lora.rank;
  if (chosen === undefined) return federationRank;
  if (!Number.isSafeInteger(chosen) || chosen < 1 || chosen > federationRank) {
    throw new FederationError(
      'FEDERATION_RANK',
      `${field} must be a whole number from 1 to ${federationRank} (federation ${settings.id}'s LoRA rank), got ${chosen}`,
      { field },
    );
  }
  const rule = settings.aggregation.rule;
  if (chosen < federationRank && !ruleTakesLowerRanks(rule)) {
    const takers = aggregationRuleNames().filter((n) => ruleTakesLowerRanks(n));
    throw new FederationError(
      'FEDERATION_RANK',
      `${field} ${chosen}: federation ${settings.id} aggregates with rule ${rule}, which takes only its LoRA rank ${federationRank}; a lower rank needs a rule that aggregates it exactly (${takers.join(', ')})`,
      { field },
    );
  }
  return chosen;
}

/**
 * The global adapter's values as a rank-`rank` participant trains from them: as they are at the
 * federation's rank, else truncated (truncateAdapterRank). Also the shapes its update has.
 */
export function adapterAtRank(
  global: ReadonlyMap<string, Tensor>,
  values: ReadonlyMap<string, Float32Array>,
  rank: number,
  federationRank: number,
): { values: ReadonlyMap<string, Float32Array>; shapes: ReadonlyMap<string, readonly number[]> } {
  const schema = adapterSchema(global);
  if (rank === federationRank) return { values, shapes: schema };
  return { values: truncateAdapterRank(values, schema, rank), shapes: schemaAtRank(schema, rank) };
}
