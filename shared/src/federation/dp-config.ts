// The federation's client-level differential privacy setting (docs/privacy.md, "Client-level
// differential privacy"): DP-FedAvg (McMahan et al. 2018) with clip bound C, noise multiplier
// sigma, the delta the accountant reports epsilon at, and optionally an epsilon budget after which
// the federation finishes. Absent from a config: no DP, and the config hashes as before.
//
// What the guarantee needs from the rest of the config, refused here with the reason:
//   - each counted update weighs 1 (rule fedavg-uniform): DP-FedAvg's sensitivity is C only when
//     no participant's weight can grow with what it claims; an example-count weighted mean gives a
//     participant with many examples more than C of influence
//   - no robust rule (median, trimmed-mean, krum) and no product-space rule: their output moves
//     by other than C/n when one update changes, so the Gaussian noise would not match it
//   - no aggregation.clipping: DP clips each update's delta to C itself; a second clip would make
//     the recorded clip bound say less than what happened
//   - no SCAFFOLD: its control variate is an unnoised mean of the clipped updates, served to
//     every participant, which would leak what the noise hides

import { DEFAULT_RDP_ORDERS, MAX_RDP_ORDER } from '../privacy/rdp.ts';
import { fail, object, optional, predicate, type Infer, type Schema } from '../schema/schema.ts';

/** The one rule DP-FedAvg runs with: the unweighted mean, so each counted update weighs 1. */
export const DP_RULE = 'fedavg-uniform';
/** The most orders a federation may fix (rdp.ts accepts up to 4096; a config keeps it smaller). */
export const MAX_CONFIG_ORDERS = 1024;

const positiveNumber = (what: string): Schema<number> =>
  predicate<number>(
    (v) => typeof v === 'number' && Number.isFinite(v) && v > 0,
    (v) => `must be ${what}, got ${JSON.stringify(v)}`,
    'RANGE',
  );

/** The section as the config declares it (a field a newer fedit wrote is dropped, not refused). */
export const differentialPrivacySection = object(
  {
    /** C: every update's delta is clipped to this L2 norm (the mechanism's sensitivity). */
    clipNorm: positiveNumber('a finite positive number (the L2 clip bound C)'),
    /** sigma: the noise on the sum has standard deviation sigma * C per coordinate. */
    noiseMultiplier: positiveNumber('a finite positive number (sigma)'),
    /** delta: epsilon is reported at this delta; below 1 / (participants) is the usual advice. */
    delta: predicate<number>(
      (v) => typeof v === 'number' && v > 0 && v < 1,
      (v) => `must be a number in (0, 1), got ${JSON.stringify(v)}`,
      'RANGE',
    ),
    /** Once one more round would spend more than this epsilon at delta, the federation finishes. */
    epsilonBudget: optional(positiveNumber('a finite positive number (an epsilon budget)')),
    /** The Rényi orders the accountant uses. Absent = Opacus' DEFAULT_ALPHAS. */
    orders: optional(
      predicate<number[]>(
        (v) =>
          Array.isArray(v) &&
          v.length > 0 &&
          v.length <= MAX_CONFIG_ORDERS &&
          v.every((a) => typeof a === 'number' && a > 1 && a <= MAX_RDP_ORDER),
        `must be a list of 1 to ${MAX_CONFIG_ORDERS} numbers in (1, ${MAX_RDP_ORDER}]`,
      ),
    ),
  },
  { others: 'drop', wording: { notObject: 'must be an object' } },
);

export type DifferentialPrivacyConfig = Infer<typeof differentialPrivacySection>;

/** The parts of a config the combination rules read. */
export interface DpConfigSources {
  differentialPrivacy?: DifferentialPrivacyConfig;
  secureAggregation?: { clipRange: number };
  training: { scaffold?: boolean };
  aggregation: { rule: string; clipping?: unknown };
}

/**
 * Refuses the combinations that break DP-FedAvg's guarantee (this file's header), naming the
 * field; a SchemaError the config's parser turns into ConfigError.
 */
export function checkDpCombination(config: DpConfigSources): void {
  const dp = config.differentialPrivacy;
  if (dp === undefined) return;
  const { rule, clipping } = config.aggregation;
  if (rule !== DP_RULE)
    fail(
      'INCONSISTENT',
      'aggregation.rule',
      `aggregation.rule must be "${DP_RULE}" with differentialPrivacy, got ${JSON.stringify(rule)}: DP-FedAvg's sensitivity is the clip bound C only when each counted update weighs 1 (an example-count weighted mean lets one participant move the mean by more than C/n, and robust or product-space rules change the sensitivity), so the noise would not cover it`,
    );
  if (clipping !== undefined)
    fail(
      'INCONSISTENT',
      'aggregation.clipping',
      'aggregation.clipping must be absent with differentialPrivacy: every update is clipped to differentialPrivacy.clipNorm, and a second clip would make the recorded bound untrue',
    );
  const secure = config.secureAggregation;
  if (secure !== undefined && !(secure.clipRange >= secureClipRangeFloor(dp)))
    fail(
      'INCONSISTENT',
      'secureAggregation.clipRange',
      `secureAggregation.clipRange must be at least ${secureClipRangeFloor(dp).toPrecision(4)} with differentialPrivacy (clipNorm ${dp.clipNorm}, noiseMultiplier ${dp.noiseMultiplier}), got ${secure.clipRange}: each participant's noise share must pass the encoding's clip range unclipped, or the noise is no longer Gaussian and epsilon does not hold`,
    );
  if (config.training.scaffold)
    fail(
      'INCONSISTENT',
      'training.scaffold',
      "training.scaffold must be off with differentialPrivacy: SCAFFOLD's control variate is an unnoised mean of the updates served to every participant",
    );
}

/**
 * The smallest secureAggregation.clipRange DP's distributed noise allows: a participant's encoded
 * value is its clipped delta (at most C per coordinate) plus its noise share, whose standard
 * deviation is at most sigma * C / sqrt(2) (shares are sized for at least 2 survivors). The encoding
 * clips each coordinate to [-R, R]; a clipped noise value would no longer be Gaussian and the
 * accountant's epsilon would not hold, so R must leave 7 standard deviations of room (a coordinate
 * is clipped with probability below 3e-12).
 */
export function secureClipRangeFloor(
  dp: Pick<DifferentialPrivacyConfig, 'clipNorm' | 'noiseMultiplier'>,
): number {
  return dp.clipNorm * (1 + (7 * dp.noiseMultiplier) / Math.SQRT2);
}

/** The orders the federation's accountant uses. */
export function dpOrders(dp: DifferentialPrivacyConfig): readonly number[] {
  return dp.orders ?? DEFAULT_RDP_ORDERS;
}
