// Server optimizers (the FedOpt family): the round's combined update is treated as a
// pseudo-gradient and the server takes an optimizer step with it, with state kept between rounds.
//   sgd      x' = x + lr * D                                  (FedAvg with a server learning rate)
//   avgm     m' = beta1 * m + D;  x' = x + lr * m'             (Hsu et al. 2019, FedAvgM)
//   adagrad  v' = v + D^2                                      (Reddi et al. 2021, Algorithm 2)
//   yogi     v' = v - (1 - beta2) * D^2 * sign(v - D^2)
//   adam     v' = beta2 * v + (1 - beta2) * D^2
//            for these three: m' = beta1 * m + (1 - beta1) * D;  x' = x + lr * m' / (sqrt(v') + tau)
// where x is the global adapter the round started from, D = target - x the pseudo-gradient (target:
// what the rule combined, in binary64), m and v start at 0 and carry no bias correction (as in
// Reddi et al.). sign(0) = 0.
//
// Exact arithmetic, element by element in binary64 (round-to-nearest-even, no fused multiply-add,
// operations in the order written above, sqrt correctly rounded), with x, m, v the stored float32
// values widened: first m' and v' are computed and rounded to float32 (that is the state stored
// for the next round, as F32 tensors "m:<name>" and "v:<name>"), then the step uses those rounded
// m' and v' widened back, and x' is rounded to float32. D is computed once: target[i] - x[i].
// In numpy (float64 arrays, f32 = np.float32): m = f32(b1*m + (1-b1)*D); v = f32(b2*v + (1-b2)*D*D);
// x = f32(x + lr * m.astype(float64) / (np.sqrt(v.astype(float64)) + tau)). (1 - b1) and
// (1 - b2) are binary64 subtractions of the configured values.

import { AggregationError } from './aggregation-error.ts';
import type { ServerOptimizerSettings } from './rule-settings.ts';
import type { AdapterSchema, TensorValues } from './schema.ts';
import { tensorFromF32, type Tensor } from '../tensors/tensor.ts';

/** The names a state tensor is stored under, beside the adapter tensor it belongs to. */
export const stateName = { m: (tensor: string) => `m:${tensor}`, v: (tensor: string) => `v:${tensor}` };

/** Which state tensors an optimizer keeps. */
function keeps(kind: ServerOptimizerSettings['kind']): { m: boolean; v: boolean } {
  if (kind === 'sgd') return { m: false, v: false };
  if (kind === 'avgm') return { m: true, v: false };
  return { m: true, v: true };
}

export interface ServerStep {
  adapter: Map<string, Float32Array>;
  /** The state for the next round; undefined for sgd, which keeps none. */
  state: Map<string, Float32Array> | undefined;
}

/**
 * One server step from `global` toward `target` with `state` (undefined before the first step:
 * zeros). Throws AggregationError('AGGREGATION_SHAPE') when the state does not fit the schema.
 */
export function serverStep(
  settings: ServerOptimizerSettings,
  schema: AdapterSchema,
  global: TensorValues,
  target: ReadonlyMap<string, Float64Array>,
  state: TensorValues | undefined,
): ServerStep {
  const { kind, lr, beta1, beta2, tau } = settings;
  const kept = keeps(kind);
  checkState(schema, kept, state);
  const adapter = new Map<string, Float32Array>();
  const next = kept.m || kept.v ? new Map<string, Float32Array>() : undefined;
  const oneMinusB1 = 1 - beta1;
  const oneMinusB2 = 1 - beta2;
  for (const name of schema.keys()) {
    const x = global.get(name)!;
    const t = target.get(name)!;
    const n = x.length;
    const m = kept.m ? new Float32Array(n) : undefined;
    const v = kept.v ? new Float32Array(n) : undefined;
    const mPrev = state?.get(stateName.m(name));
    const vPrev = state?.get(stateName.v(name));
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const d = t[i] - x[i];
      if (kind === 'sgd') {
        out[i] = x[i] + lr * d;
        continue;
      }
      const m0 = mPrev ? mPrev[i] : 0;
      if (kind === 'avgm') {
        m![i] = beta1 * m0 + d;
        out[i] = x[i] + lr * m![i];
        continue;
      }
      m![i] = beta1 * m0 + oneMinusB1 * d;
      const v0 = vPrev ? vPrev[i] : 0;
      const d2 = d * d;
      if (kind === 'adagrad') v![i] = v0 + d2;
      else if (kind === 'adam') v![i] = beta2 * v0 + oneMinusB2 * d2;
      else v![i] = v0 - oneMinusB2 * d2 * Math.sign(v0 - d2);
      out[i] = x[i] + (lr * m![i]) / (Math.sqrt(v![i]) + tau);
    }
    adapter.set(name, out);
    if (m) next!.set(stateName.m(name), m);
    if (v) next!.set(stateName.v(name), v);
  }
  return { adapter, state: next };
}

/** The F32 tensors of a server state, shaped like the adapter tensors they belong to (for the blob store). */
export function serverStateTensors(schema: AdapterSchema, state: TensorValues): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [key, values] of state) {
    const shape = schema.get(key.slice(2));
    if (!shape)
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `server state ${key} belongs to no adapter tensor`,
      );
    out.set(key, tensorFromF32(shape, values, 'F32'));
  }
  return out;
}

function checkState(
  schema: AdapterSchema,
  kept: { m: boolean; v: boolean },
  state: TensorValues | undefined,
) {
  if (!state) return;
  const expected = (kept.m ? schema.size : 0) + (kept.v ? schema.size : 0);
  for (const [name, shape] of schema) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const [keptHere, key] of [
      [kept.m, stateName.m(name)],
      [kept.v, stateName.v(name)],
    ] as const) {
      if (!keptHere) continue;
      const values = state.get(key);
      if (!values || values.length !== n) {
        throw new AggregationError(
          'AGGREGATION_SHAPE',
          `the server optimizer's state lacks ${key} of ${n} values, or has another size`,
        );
      }
    }
  }
  if (state.size !== expected) {
    throw new AggregationError(
      'AGGREGATION_SHAPE',
      `the server optimizer's state has ${state.size} tensors, expected ${expected}`,
    );
  }
}
