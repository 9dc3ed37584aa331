// `fedit coordinator init`'s secure-aggregation options, and the `secureAggregation` section they
// make (shared/src/federation/secure-aggregation.ts says what the section means and which settings
// it refuses). Layered like every init setting: defaults, then --settings FILE's section, then the
// options typed. The defaults are chosen to pass the fixed-point overflow condition
// N·ceil(W·R·2^k) < 2^31 for the federation's weight cap W: the clip range R is 1 (a LoRA delta
// coordinate beyond 1 in one round is far outside anything training produces), N is 1000, and the
// scale 2^k is the finest (k at most 24) that the condition allows.

import type { Command } from 'commander';
import {
  FeditError,
  MAX_FIXED_POINT_PARTICIPANTS,
  checkFixedPointConfig,
  secureClipRangeFloor,
} from '@fedit/shared';
import { number } from './options.ts';

type Patch = { [key: string]: unknown };

const isSection = (v: unknown): v is Patch => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The defaults of a secure federation's section, besides scaleBits (derived from the weight cap). */
export const SECURE_DEFAULTS = {
  graph: 'secagg+',
  thresholdFraction: 0.7,
  clipRange: 1,
  maxParticipants: 1000,
  phaseSeconds: 60,
} as const;

/** The finest scale the default search tries: 2^-24 is below float32's resolution near 1. */
const MAX_DEFAULT_SCALE_BITS = 24;

/** Which option a secureAggregation field comes from (init-settings.ts names fields with it). */
export const SECURE_OPTION_OF_FIELD: Record<string, string> = {
  secureAggregation: '--secure-aggregation',
  'secureAggregation.graph': '--secure-aggregation',
  'secureAggregation.thresholdFraction': '--secagg-threshold',
  'secureAggregation.clipRange': '--secagg-clip-range',
  'secureAggregation.scaleBits': '--secagg-scale-bits',
  'secureAggregation.maxParticipants': '--secagg-max-participants',
  'secureAggregation.phaseSeconds': '--secagg-phase-seconds',
};

/** Commander's option keys of the --secagg-* refinements, by the field each sets. */
const REFINEMENTS = {
  secaggThreshold: 'thresholdFraction',
  secaggClipRange: 'clipRange',
  secaggScaleBits: 'scaleBits',
  secaggMaxParticipants: 'maxParticipants',
  secaggPhaseSeconds: 'phaseSeconds',
} as const;

function graph(raw: string): string {
  if (raw === 'secagg+' || raw === 'complete') return raw;
  throw new FeditError('CLI_OPTION', `--secure-aggregation must be secagg+ or complete, got "${raw}"`);
}

export function addSecureAggregationOptions(command: Command): Command {
  return command
    .option(
      '--secure-aggregation [graph]',
      "secure aggregation: the coordinator sees only the sum of the participants' masked updates, never one; graph secagg+ (each masks with O(log n) neighbours, the default) or complete",
      graph,
    )
    .option(
      '--secagg-threshold <f>',
      `a round unmasks only while more than this share of each participant's share holders remain, else it aborts (in (0.5, 1]; default ${SECURE_DEFAULTS.thresholdFraction})`,
      number('--secagg-threshold', { above: 0.5, what: 'a fraction in (0.5, 1]' }),
    )
    .option(
      '--secagg-clip-range <r>',
      `each coordinate of an update's change is clipped to [-r, r] before it is masked (default ${SECURE_DEFAULTS.clipRange})`,
      number('--secagg-clip-range', { above: 0 }),
    )
    .option(
      '--secagg-scale-bits <k>',
      'fixed point with 2^k steps per unit (default: the finest the overflow condition allows for the weight cap)',
      number('--secagg-scale-bits', { integer: true, min: 0 }),
    )
    .option(
      '--secagg-max-participants <n>',
      `the most participants one secure round may select (default ${SECURE_DEFAULTS.maxParticipants})`,
      number('--secagg-max-participants', { integer: true, min: 2 }),
    )
    .option(
      '--secagg-phase-seconds <s>',
      `how long each key, share and reveal phase waits for the participants at most (default ${SECURE_DEFAULTS.phaseSeconds})`,
      number('--secagg-phase-seconds', { above: 0 }),
    );
}

/**
 * The finest scaleBits k (at most MAX_DEFAULT_SCALE_BITS) for which N·ceil(W·R·2^k) < 2^31, or
 * undefined when not even k = 0 fits (the weight cap or clip range is too large for N).
 */
export function finestScaleBits(
  clipRange: number,
  maxParticipants: number,
  weightCap: number,
): number | undefined {
  for (let k = MAX_DEFAULT_SCALE_BITS; k >= 0; k--) {
    try {
      checkFixedPointConfig({ clipRange, scaleBits: k, maxParticipants, maxWeight: weightCap });
      return k;
    } catch {
      // too fine for the ring: try a coarser scale
    }
  }
  return undefined;
}

/**
 * Sets `merged.secureAggregation` from the options (`typed(key)`: the person typed option `key`)
 * over the file's section (`file`) over the defaults, when --secure-aggregation was given or the
 * file has the section. Also pins what a secure federation needs spelled out: the weight cap
 * (W of the overflow condition) and no SCAFFOLD, unless the person chose otherwise (then the
 * config's own check names the conflict).
 */
export function applySecureAggregation(
  merged: Patch,
  file: Patch,
  o: { [key: string]: unknown },
  typed: (key: string) => boolean,
): void {
  const fromFile = isSection(file.secureAggregation) ? file.secureAggregation : undefined;
  const on = typed('secureAggregation') || fromFile !== undefined;
  for (const [key, field] of Object.entries(REFINEMENTS)) {
    if (typed(key) && !on) {
      const flag = SECURE_OPTION_OF_FIELD[`secureAggregation.${field}`];
      throw new FeditError('CLI_OPTION', `${flag} refines --secure-aggregation: give that too`);
    }
  }
  if (!on) return;
  const training = isSection(merged.training) ? merged.training : {};
  const aggregation = isSection(merged.aggregation) ? merged.aggregation : {};
  const steps = typeof training.localSteps === 'number' ? training.localSteps : 1;
  const batch = typeof training.batchSize === 'number' ? training.batchSize : 1;
  const weightCap = typeof aggregation.weightCap === 'number' ? aggregation.weightCap : steps * batch;
  const section: Patch = { ...SECURE_DEFAULTS, ...fromFile };
  // With differential privacy the clip range must let the participants' noise shares through
  // (secureClipRangeFloor); the default is that floor, rounded up to 3 significant digits.
  const dp = merged.differentialPrivacy;
  if (isSection(dp) && typeof dp.clipNorm === 'number' && typeof dp.noiseMultiplier === 'number') {
    const floor = secureClipRangeFloor({ clipNorm: dp.clipNorm, noiseMultiplier: dp.noiseMultiplier });
    const rounded = Number(floor.toPrecision(3));
    section.clipRange =
      fromFile?.clipRange ?? (rounded >= floor ? rounded : Number((floor * 1.001).toPrecision(3)));
  }
  if (typed('secureAggregation') && typeof o.secureAggregation === 'string')
    section.graph = o.secureAggregation;
  for (const [key, field] of Object.entries(REFINEMENTS)) if (typed(key)) section[field] = o[key];
  if (section.scaleBits === undefined) {
    const n = Math.min(Number(section.maxParticipants), MAX_FIXED_POINT_PARTICIPANTS);
    const k = finestScaleBits(Number(section.clipRange), n, weightCap);
    // None fits: leave k = 0 and let the config's check say why, naming the numbers.
    section.scaleBits = k ?? 0;
  }
  merged.secureAggregation = section;
  merged.aggregation = { ...aggregation, weightCap };
  merged.training = { ...training, scaffold: training.scaffold ?? false };
}
