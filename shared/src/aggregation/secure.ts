// The sum path of a round: what aggregateRound (aggregate.ts) does from the target on, when the
// coordinator holds only the unmasked sum of a secure round (secagg/round/), fixed to the bit so the
// audit reproduces it:
//
//   participant  delta = trained − global, float32 subtraction per element; with clipping
//                `fixed` (bound C) scaled by s = clipScale(updateNorm(trained, global), C):
//                delta = float32(s · delta) (s = 1: unchanged); then encoded with its capped weight
//                (fedit: min(exampleCount, weightCap); fedavg-uniform: 1) by fixed-point.ts
//   mean         m = decodeWeightedMean(sum, survivors, fixedPoint): float32(signed(s)/(2^k·T))
//   target       t = global + m, per element in binary64 (both float32, so exact)
//   adapter      without a server optimizer: float32(t), i.e. toFloat32; with one: serverStep from
//                the global adapter toward t with the round's server state, as aggregateRound
//
// Rules that are not sums (median, Krum, ...) and SCAFFOLD never reach here: the config refuses
// them (federation/secure-aggregation.ts), and aggregateSecureRound refuses them again.

import { AggregationError } from './aggregation-error.ts';
import { clipScale } from './clipping.ts';
import { updateNorm } from './norm.ts';
import type { AggregationConfig } from './rule.ts';
import { aggregationRule } from './rules.ts';
import type { RoundAggregate } from './aggregate.ts';
import type { AdapterSchema, TensorValues } from './schema.ts';
import { serverStep } from './server-optimizer.ts';
import { toFloat32 } from './weighted-mean.ts';
import { SECURE_RULES } from '../federation/secure-aggregation.ts';
import { decodeWeightedMean, type FixedPointConfig } from '../secagg/fixed-point.ts';
import { unflatten } from '../secagg/round/flatten.ts';

/** The weight a participant encodes under the masks (see the header). */
export function secureWeight(rule: string, exampleCount: number, weightCap: number): number {
  return rule === 'fedavg-uniform' ? 1 : Math.min(exampleCount, weightCap);
}

/** A participant's delta as it encodes it (see the header): trained − global, clipped when `fixed`. */
export function secureDelta(
  trained: TensorValues,
  global: TensorValues,
  rule: string,
  config: AggregationConfig,
): Map<string, Float32Array> {
  const clipping = aggregationRule(rule).settings(config).clipping;
  if (clipping && clipping.kind !== 'fixed')
    throw new AggregationError('AGGREGATION_CONFIG', 'secure rounds take only fixed clipping');
  const scale = clipping ? clipScale(updateNorm(trained, global), clipping.bound) : 1;
  const delta = new Map<string, Float32Array>();
  for (const [name, x] of trained) {
    const g = global.get(name);
    if (!g || g.length !== x.length)
      throw new AggregationError('AGGREGATION_SHAPE', `tensor ${name} does not fit the global adapter`);
    const d = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) d[i] = x[i] - g[i];
    if (scale !== 1) for (let i = 0; i < d.length; i++) d[i] = scale * d[i];
    delta.set(name, d);
  }
  return delta;
}

/** global + mean per element in binary64: the round's target (see the header). */
export function secureTarget(
  schema: AdapterSchema,
  global: TensorValues,
  mean: Float32Array,
): Map<string, Float64Array> {
  const parts = unflatten(schema, mean);
  const target = new Map<string, Float64Array>();
  for (const [name, m] of parts) {
    const g = global.get(name);
    if (!g || g.length !== m.length)
      throw new AggregationError(
        'AGGREGATION_SHAPE',
        `global adapter: tensor ${name} does not fit the schema`,
      );
    const t = new Float64Array(m.length);
    for (let i = 0; i < m.length; i++) t[i] = g[i] + m[i];
    target.set(name, t);
  }
  return target;
}

export interface SecureRoundInputs {
  rule: string;
  config: AggregationConfig;
  schema: AdapterSchema;
  global: TensorValues;
  /** The server optimizer's state after the previous round that had one (undefined: zeros). */
  serverState?: TensorValues;
  /** The unmasked sum of the survivors' encodings (L + 1 words). */
  sum: Uint32Array;
  /** How many encodings the sum holds (the survivors). */
  survivors: number;
  fixedPoint: FixedPointConfig;
}

/** The round's new adapter (and server state) from the unmasked sum (see the header). */
export function aggregateSecureRound(inputs: SecureRoundInputs): RoundAggregate {
  const { rule, config, schema, global, sum, survivors, fixedPoint } = inputs;
  if (!(SECURE_RULES as readonly string[]).includes(rule))
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `rule ${rule} is not a sum; a secure round cannot apply it`,
    );
  const settings = aggregationRule(rule).settings(config);
  if (settings.scaffold || settings.clipping?.kind === 'adaptive')
    throw new AggregationError('AGGREGATION_CONFIG', `rule ${rule}'s settings need individual updates`);
  const target = secureTarget(schema, global, decodeWeightedMean(sum, survivors, fixedPoint));
  if (!settings.serverOptimizer) return { adapter: toFloat32(target) };
  const step = serverStep(settings.serverOptimizer, schema, global, target, inputs.serverState);
  return { adapter: step.adapter, ...(step.state && { serverState: step.state }) };
}
