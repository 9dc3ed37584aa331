// Which federations can run secure rounds, and the numbers a secure round derives from the config.
// A secure round (shared/src/secagg/round/) shows the coordinator only the sum of the selected
// participants' masked fixed-point updates, so a federation may turn it on only when its rule is a
// sum and nothing in its aggregation needs an individual update:
//
//   allowed   rules fedit (weight = min(exampleCount, weightCap), summed under the masks) and
//             fedavg-uniform (weight 1); FFA-LoRA (training.freezeLoraA: the A deltas are zero);
//             FedProx (local); the server optimizers (applied to the decoded mean); clipping
//             `fixed` (each participant scales its own delta before encoding; the audit cannot
//             check it, only the per-coordinate clip range the encoding enforces)
//   refused   median, trimmed-mean and krum (they rank individual updates), product-svd (it
//             re-factors the product of each update, not a sum), SCAFFOLD (its control variate
//             step needs each clipped update), adaptive clipping (its bound is the median norm
//             of the individual updates)
//   needed    aggregation.weightCap (W of the overflow condition) and a fixed-point configuration
//             that cannot overflow (fixed-point.ts's checkFixedPointConfig with R = clipRange,
//             k = scaleBits, N = maxParticipants, W = weightCap)
//
// The threshold of a round: t = the smallest whole t >= 2 with t / h >= thresholdFraction (one
// binary64 division, so 3 / 5 >= 0.6 holds where 0.6 · 5 rounds to 3.0000000000000004), h the
// fewest share holders any participant has (a participant and its neighbours in the round's
// graph): every secret is reconstructed from any t of its h holders; fewer learn nothing of it.

import type { FederationConfig } from './config.ts';
import { checkFixedPointConfig, type FixedPointConfig } from '../secagg/fixed-point.ts';
import { SecAggError } from '../secagg/secagg-error.ts';

/** The secure-aggregation section of a federation config. */
export type SecureAggregationSettings = NonNullable<FederationConfig['secureAggregation']>;

/** The parts of a config secureAggregationProblem reads (the parsed config, or one being parsed). */
export interface SecureAggregationSources {
  aggregation: Pick<FederationConfig['aggregation'], 'rule' | 'weightCap' | 'clipping'>;
  training: Pick<FederationConfig['training'], 'scaffold'>;
  secureAggregation?: SecureAggregationSettings;
}

/** Rules whose aggregate is a (weighted) sum of the updates, so masks can hide the updates. */
export const SECURE_RULES = ['fedit', 'fedavg-uniform'] as const;

const WHY_REFUSED: Readonly<Record<string, string>> = {
  median: 'takes the median of each coordinate over the individual updates',
  'trimmed-mean': 'sorts each coordinate over the individual updates',
  krum: 'scores each individual update by its distances to the others',
  'product-svd': 'factors the product B·A of each individual update, which is not a sum of the updates',
};

/**
 * Why `config` cannot run secure rounds, as one sentence after "secureAggregation": undefined when
 * it can (or has no secureAggregation section). Used by config validation, `coordinator init` and
 * `client join`.
 */
export function secureAggregationProblem(config: SecureAggregationSources): string | undefined {
  const secure = config.secureAggregation;
  if (secure === undefined) return undefined;
  const { rule, weightCap, clipping } = config.aggregation;
  if (!(SECURE_RULES as readonly string[]).includes(rule)) {
    const why = WHY_REFUSED[rule] ?? 'is not a sum of the updates';
    return `cannot be on with aggregation rule ${rule}: it ${why}, and secure aggregation shows the coordinator only the sum (use ${SECURE_RULES.join(' or ')})`;
  }
  if (config.training.scaffold === true)
    return "cannot be on with training.scaffold: SCAFFOLD's control variate steps from each individual update, which secure aggregation hides";
  if (clipping?.kind === 'adaptive')
    return 'cannot be on with adaptive clipping: its bound is the median norm of the individual updates, which secure aggregation hides (use clipping kind "fixed")';
  if (weightCap === undefined)
    return 'needs aggregation.weightCap: it bounds each weight under the masks (W of the overflow condition)';
  try {
    checkFixedPointConfig(secureFixedPoint(secure, weightCap));
  } catch (error) {
    if (error instanceof SecAggError) return `has a fixed-point setting that cannot work: ${error.message}`;
    throw error;
  }
  return undefined;
}

/** The fixed-point configuration (fixed-point.ts) of a secure federation. */
export function secureFixedPoint(secure: SecureAggregationSettings, weightCap: number): FixedPointConfig {
  return {
    clipRange: secure.clipRange,
    scaleBits: secure.scaleBits,
    maxParticipants: secure.maxParticipants,
    maxWeight: weightCap,
  };
}

/** t, the smallest whole t >= 2 with t / fewestHolders >= thresholdFraction: see the header. */
export function secureThreshold(thresholdFraction: number, fewestHolders: number): number {
  if (!Number.isInteger(fewestHolders) || fewestHolders < 2)
    throw new SecAggError('SECAGG_INPUT', 'fewestHolders must be a whole number of at least 2');
  let t = 2;
  while (t < fewestHolders && t / fewestHolders < thresholdFraction) t++;
  return t;
}
