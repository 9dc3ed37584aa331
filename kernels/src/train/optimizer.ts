// Global-norm gradient clipping and AdamW, as graph nodes, with PyTorch's exact update order
// (torch.nn.utils.clip_grad_norm_ and torch.optim.AdamW), so a step can be checked against it.
// Step-dependent scalars (learning rate, bias corrections) are graph inputs: schedules live on the
// host and a compiled step never needs rebuilding.

import type { Value } from '../graph/ir.ts';
import { add, div, min, mul, reduceSum, sqrt, sub } from '../graph/ops.ts';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this; 0 disables clipping. */
  maxGradNorm: number;
}

export const DEFAULT_ADAMW: AdamWConfig = {
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
  maxGradNorm: 1.0,
};

/** Scalar graph inputs of an optimizer step. */
export interface StepScalars {
  lr: Value;
  /** 1 - beta1^t */
  biasCorrection1: Value;
  /** sqrt(1 - beta2^t) */
  biasCorrection2Sqrt: Value;
}

/** The host-side values for the step scalars at 1-based step t. */
export function stepScalarValues(cfg: AdamWConfig, lr: number, t: number) {
  return { lr, biasCorrection1: 1 - cfg.beta1 ** t, biasCorrection2Sqrt: Math.sqrt(1 - cfg.beta2 ** t) };
}

export function globalNorm(grads: readonly Value[]): Value {
  const squares = grads.map((g) =>
    reduceSum(
      mul(g, g),
      g.shape.map((_, i) => i),
      false,
    ),
  );
  return sqrt(squares.reduce((a, b) => add(a, b)));
}

export function clipByGlobalNorm(grads: readonly Value[], maxNorm: number): { grads: Value[]; norm: Value } {
  const norm = globalNorm(grads);
  if (!(maxNorm > 0)) return { grads: [...grads], norm };
  const coef = min(div(maxNorm, add(norm, 1e-6)), 1);
  return { grads: grads.map((g) => mul(g, coef)), norm };
}

export interface AdamWState {
  param: Value;
  m: Value;
  v: Value;
}

export function adamwUpdate(state: AdamWState, grad: Value, s: StepScalars, cfg: AdamWConfig): AdamWState {
  const decayed = cfg.weightDecay > 0 ? mul(state.param, sub(1, mul(s.lr, cfg.weightDecay))) : state.param;
  const m = add(mul(state.m, cfg.beta1), mul(grad, 1 - cfg.beta1));
  const v = add(mul(state.v, cfg.beta2), mul(mul(grad, grad), 1 - cfg.beta2));
  const denom = add(div(sqrt(v), s.biasCorrection2Sqrt), cfg.eps);
  const stepSize = div(s.lr, s.biasCorrection1);
  const param = sub(decayed, mul(div(m, denom), stepSize));
  return { param, m, v };
}
