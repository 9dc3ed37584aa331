// DP-FedAvg's step of the round pipeline (aggregate.ts), replacing the rule's combine when the rule
// config carries differentialPrivacy (rule-settings.ts). The arithmetic, for an auditor:
//
//   order      updates in canonical participant order (as every rule), tensors in schema order
//              (the adapter's canonical name order), elements in index order
//   delta      d_k[i] = float32(x_k[i] - g[i]), g the round's global adapter (the difference of two
//              float32 values in binary64 is exact; one rounding to float32)
//   clip       y_k = clipToNorm(d_k, C) (privacy/dp-fedavg.ts: binary64 norm, scale C/norm when
//              norm > C, one rounding per element)
//   sum        s[i] = (((0 + y_1[i]) + y_2[i]) + ...) in binary64
//   noise      z = gaussianNoise(seed, total elements, sigma * C) (dp-fedavg.ts: float32 samples,
//              schema order, one stream over all tensors)
//   target     t[i] = g[i] + (s[i] + z[i]) / n in binary64, n the number of counted updates;
//              the pipeline then rounds t to float32 or hands it to the server optimizer
//
// Each counted update weighs 1 (the rule is fedavg-uniform; federation/dp-config.ts says why), so
// one participant moves the mean by at most C/n and the noise sigma*C/n matches that sensitivity.
// The seed is the coordinator's, drawn at round open and committed to in the round-open record
// (noiseSeedCommitment); the audit regenerates z from the seed file and compares bit for bit.

import { createHash } from 'node:crypto';
import { clipToNorm, distributedNoiseStddev, addGaussianNoise, gaussianNoise } from '../privacy/dp-fedavg.ts';
import { AggregationError } from './aggregation-error.ts';
import type { DpSettings } from './rule-settings.ts';
import type { UpdateValues } from './rule.ts';
import type { AdapterSchema, TensorValues } from './schema.ts';

/** The bytes of a round's noise seed. */
export const NOISE_SEED_BYTES = 32;
const COMMITMENT_DOMAIN = 'fedit/dp/noise-seed/v1';

/** hex(SHA-256("fedit/dp/noise-seed/v1" || seed)): what the round-open record commits to. */
export function noiseSeedCommitment(seed: Uint8Array): string {
  if (!(seed instanceof Uint8Array) || seed.length !== NOISE_SEED_BYTES)
    throw new RangeError(`the noise seed must be ${NOISE_SEED_BYTES} bytes`);
  return createHash('sha256').update(COMMITMENT_DOMAIN).update(seed).digest('hex');
}

/** One update's float32 delta from the global adapter, in schema order (header: delta). */
function deltaOf(
  values: UpdateValues,
  global: TensorValues,
  schema: AdapterSchema,
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const name of schema.keys()) {
    const x = values.get(name)!;
    const g = global.get(name)!;
    const d = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) d[i] = x[i] - g[i];
    out.set(name, d);
  }
  return out;
}

/** The DP-FedAvg target of the header from the clipped deltas; `updates` are walked once. */
export function dpFedAvgTarget(
  updates: Iterable<UpdateValues>,
  global: TensorValues,
  schema: AdapterSchema,
  dp: DpSettings,
  seed: Uint8Array | undefined,
): Map<string, Float64Array> {
  // With distributed noise the coordinator never holds an update: the secure round decodes the
  // sum of the participants' clipped, noised deltas (distributedDpDelta) and no step here applies.
  if (dp.noise !== 'central')
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      'differentialPrivacy with distributed noise is aggregated by the secure round, not from individual updates',
    );
  if (seed === undefined)
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      "differentialPrivacy with central noise needs the round's noise seed",
    );
  const sums = new Map<string, Float64Array>();
  for (const name of schema.keys()) sums.set(name, new Float64Array(global.get(name)!.length));
  let n = 0;
  for (const values of updates) {
    const { update } = clipToNorm(deltaOf(values, global, schema), dp.clipNorm);
    for (const [name, y] of update) {
      const s = sums.get(name)!;
      for (let i = 0; i < y.length; i++) s[i] += y[i];
    }
    n++;
  }
  if (n === 0) throw new AggregationError('AGGREGATION_EMPTY', 'no update was counted');
  const total = [...sums.values()].reduce((a, s) => a + s.length, 0);
  const noise = gaussianNoise(seed, total, dp.noiseMultiplier * dp.clipNorm);
  const target = new Map<string, Float64Array>();
  let offset = 0;
  for (const [name, s] of sums) {
    const g = global.get(name)!;
    const t = new Float64Array(s.length);
    for (let i = 0; i < s.length; i++) t[i] = g[i] + (s[i] + noise[offset + i]) / n;
    offset += s.length;
    target.set(name, t);
  }
  return target;
}

/**
 * What a participant sends under secure aggregation with DP (distributed noise): its delta from
 * the global adapter clipped to C, plus its share N(0, sigma^2 C^2 / n) of the noise drawn from its
 * own fresh 32-byte seed (never revealed: with n shares summed the aggregate carries
 * N(0, sigma^2 C^2)). float32 values in schema order; the secure round encodes them (fixed point)
 * and the coordinator's dpFedAvgTarget with noise "distributed" adds no more. `selected` is the
 * round's n; a dropout leaves the sum under-noised by that share (docs/privacy.md).
 */
export function distributedDpDelta(
  update: TensorValues,
  global: TensorValues,
  schema: AdapterSchema,
  dp: Pick<DpSettings, 'clipNorm' | 'noiseMultiplier'>,
  selected: number,
  seed: Uint8Array,
): Map<string, Float32Array> {
  const { update: clipped } = clipToNorm(deltaOf(update, global, schema), dp.clipNorm);
  return addGaussianNoise(clipped, seed, distributedNoiseStddev(dp.noiseMultiplier, dp.clipNorm, selected));
}
