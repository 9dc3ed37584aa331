// SCAFFOLD (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated
// Learning", Algorithm 1, option II): participants correct the drift of local training by moving
// every trained tensor a further -lr * (c - c_i) each step, where c (the server's control variate)
// estimates the federation's mean step direction and c_i (kept by participant i, never sent) its
// own. The paper adds c - c_i to the gradient of local SGD; fedit trains locally with AdamW, whose
// step direction is m / sqrt(v), not the gradient, so the correction is applied to the step after
// AdamW, the direction option II measures (kernels/src/train/graphs.ts, stepCorrection). Added to
// the gradient instead, the same c - c_i swamped it: 13% exact match against FedIT's 72% on the
// learning bench (docs/learning.md, seed 1, 24 x 10 steps); applied to the step, 87% +- 6 over 3
// seeds against FedIT's 72% +- 1 and pooled training's 89% +- 3.
// After K local steps at learning rate lr from the global adapter x to its trained adapter y_i,
// participant i sets
//   c_i+ = c_i - c + (x - y_i) / (K * lr)          (option II)
// so delta_c_i = c_i+ - c_i = -c + (x - y_i) / (K * lr), and the server steps
//   c+ = c + (1 / N) * sum_{i in S} delta_c_i = c + (sum_{i in S} (x - y_i) / (K * lr) - |S| * c) / N
// over the round's counted updates S. delta_c_i is a function of what the coordinator already
// holds and the audit already checks (x, the counted update y_i, c, and K and lr, which the
// federation's config fixes for the round), so the server computes it rather than receiving it:
// the update stays the adapter alone, and a participant cannot move c apart from its adapter.
//
// N is the number of participants eligible (enrolled, not revoked) when the round opened, as the
// log's fold counts them (RoundState.eligible): the population the round's selection drew from,
// which is the paper's N (c is the mean of every participant's c_i, including those not selected).
// K is training.localSteps, lr the round's learning rate (federation/schedule.ts): both are what
// the coordinator announced with the round. The global step of x is the round's rule; SCAFFOLD's
// own server learning rate is 1 (a FedOpt server optimizer may be set beside it).
//
// Exact arithmetic, element by element in binary64 (round-to-nearest-even, no fused multiply-add,
// in the order written), with x and c the stored float32 values widened, y_k the values the rule
// combines (float32 widened, or clipping's binary64 value when the round clipped):
//   D = K * lr                                  once per round
//   S[i] = +0; for k in canonical order (ascending participant id): S[i] = S[i] + (x[i] - y_k[i])
//   c+[i] = float32(c[i] + (S[i] / D - m * c[i]) / N)         m = |S|, the number of updates
// c is +0 everywhere before the first round. The state blob stores c+ as F32 tensors "c:<name>",
// beside the server optimizer's "m:<name>" and "v:<name>". In numpy (float64 arrays):
// S = sum over k in order of (x - y_k); c = np.float32(c + (S / (K * lr) - m * c) / N).

import { AggregationError } from './aggregation-error.ts';
import type { UpdateValues } from './rule.ts';
import type { AdapterSchema, TensorValues } from './schema.ts';
import { roundLearningRate } from '../federation/schedule.ts';
import type { FederationConfig } from '../federation/config.ts';
import { numel } from '../tensors/tensor.ts';

/** The name the control variate of adapter tensor `tensor` is stored under in the server state. */
export const controlName = (tensor: string) => `c:${tensor}`;

/** What the server's SCAFFOLD step needs of a round beyond its updates. */
export interface ScaffoldRoundTerms {
  /** K: the local optimizer steps every participant ran this round. */
  localSteps: number;
  /** lr: the round's local learning rate. */
  lr: number;
  /** N: participants eligible (enrolled, not revoked) when the round opened. */
  participants: number;
}

/** The terms of round `round` of a federation with `config`, N counted by the log's fold. */
export function scaffoldTermsOf(
  config: Pick<FederationConfig, 'rounds' | 'training'>,
  round: number,
  participants: number,
): ScaffoldRoundTerms {
  return { localSteps: config.training.localSteps, lr: roundLearningRate(config, round), participants };
}

/** A server state's parts: the server optimizer's tensors (m:, v:) and SCAFFOLD's control variate (c:). */
export function splitServerState(state: TensorValues | undefined): {
  optimizer?: TensorValues;
  control?: TensorValues;
} {
  if (!state) return {};
  const optimizer = new Map<string, Float32Array>();
  const control = new Map<string, Float32Array>();
  for (const [name, values] of state) (name.startsWith('c:') ? control : optimizer).set(name, values);
  return {
    ...(optimizer.size > 0 && { optimizer }),
    ...(control.size > 0 && { control }),
  };
}

/** The control variate c held by a server state, checked against the adapter's tensors. */
export function checkControlState(schema: AdapterSchema, control: TensorValues): void {
  for (const [name, shape] of schema) {
    const values = control.get(controlName(name));
    if (!values || values.length !== numel(shape)) {
      throw new AggregationError(
        'AGGREGATION_SHAPE',
        `the server state lacks SCAFFOLD's ${controlName(name)} of ${numel(shape)} values, or has another size`,
      );
    }
  }
  if (control.size !== schema.size) {
    throw new AggregationError(
      'AGGREGATION_SHAPE',
      `the server state has ${control.size} SCAFFOLD control tensors, expected ${schema.size}`,
    );
  }
}

/** The server's SCAFFOLD step, fed the round's updates one at a time (one adapter's sums in memory). */
export class ControlStep {
  readonly #global: TensorValues;
  readonly #sums: Map<string, Float64Array>;
  #count = 0;

  constructor(schema: AdapterSchema, global: TensorValues) {
    this.#global = global;
    this.#sums = new Map([...schema].map(([name, shape]) => [name, new Float64Array(numel(shape))]));
  }

  /** Adds x - y_k for the next update in canonical order (values already validated against the schema). */
  add(update: UpdateValues): void {
    for (const [name, sum] of this.#sums) {
      const x = this.#global.get(name)!;
      const y = update.get(name);
      // c lives in the factors' space: an update of another rank (a product rule's) has no x - y.
      if (!y || y.length !== sum.length)
        throw new AggregationError(
          'AGGREGATION_SHAPE',
          `SCAFFOLD needs every update in the global adapter's shapes; ${name} has ${y?.length ?? 0} values, not ${sum.length}`,
        );
      for (let i = 0; i < sum.length; i++) sum[i] += x[i] - y[i];
    }
    this.#count++;
  }

  /** c+ from `control` (undefined: zeros), as "c:<name>" tensors. Throws when the terms are unusable. */
  result(control: TensorValues | undefined, terms: ScaffoldRoundTerms): Map<string, Float32Array> {
    checkTerms(terms, this.#count);
    const stepSize = terms.localSteps * terms.lr;
    const m = this.#count;
    const n = terms.participants;
    const out = new Map<string, Float32Array>();
    for (const [name, sum] of this.#sums) {
      const c = control?.get(controlName(name));
      const next = new Float32Array(sum.length);
      for (let i = 0; i < sum.length; i++) {
        const ci = c ? c[i] : 0;
        next[i] = ci + (sum[i] / stepSize - m * ci) / n;
      }
      out.set(controlName(name), next);
    }
    return out;
  }
}

function checkTerms(terms: ScaffoldRoundTerms, counted: number): void {
  const { localSteps, lr, participants } = terms;
  const problem =
    !Number.isSafeInteger(localSteps) || localSteps < 1
      ? `localSteps ${localSteps} is not a whole number >= 1`
      : !(Number.isFinite(lr) && lr > 0)
        ? `lr ${lr} is not a finite positive number`
        : !Number.isSafeInteger(participants) || participants < Math.max(1, counted)
          ? `${participants} participants were eligible, fewer than the ${counted} updates counted`
          : undefined;
  if (problem) throw new AggregationError('AGGREGATION_CONFIG', `SCAFFOLD: ${problem}`);
}
