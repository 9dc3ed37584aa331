// The compiled programs of local training, all built from the same decoder code:
//   train_step  forward + loss + backward + clip + AdamW in one graph (one micro-batch per step)
//   grad_step   forward + loss + backward, adding scaled gradients into accumulators (micro-batches)
//   apply_step  clip + AdamW from accumulated gradients
//   eval_step   forward + loss sum and token count (no backward)
// One graph per (model, LoRA config, batch x sequence bucket); shapes are static so ONNX Runtime
// can plan memory and pick kernels once.
//
// Federated options, each compiled in only when on (off, the graphs are node for node the plain ones):
//   freezeLoraA   FFA-LoRA (Sun et al. 2024, "Improving LoRA in Privacy-preserving Federated
//                 Learning"): every lora_A is a plain input, with no gradient, no Adam moments and no
//                 output, so A stays bit-identical and only B trains; averaging B is then exact.
//   gradientTerms what train_step and apply_step add to the loss's gradient g of each trained tensor
//                 theta, before global-norm clipping, as if it were part of the loss, in this order:
//                   g' = g + mu * (theta - anchor)    FedProx (Li et al. 2020): the gradient of
//                                                     mu/2 ||theta - anchor||^2; inputs proximal_mu
//                                                     (scalar) and `${name}.anchor`
//                   g'' = g' + correction             SCAFFOLD (Karimireddy et al. 2020): c - c_i,
//                                                     input `${name}.correction`
//                 The terms are added once per optimizer step (in apply_step, not per micro-batch),
//                 and the reported loss stays the data loss. mu is an input: changing it never
//                 recompiles.
//   stepCorrection SCAFFOLD in AdamW's direction space: after the AdamW update, each trained
//                 tensor moves a further -lr * `${name}.step_correction`. Option II's control
//                 variates, (x - y) / (K * lr), measure the mean step direction, which under AdamW is
//                 the normalised m / sqrt(v), not the gradient: added to the gradient they swamp it
//                 (and global-norm clipping then scales the data's gradient away); added to the step
//                 they correct the direction they were measured in.

import { Graph, type ElementType, type Value } from '../graph/ir.ts';
import { gradients } from '../graph/autodiff.ts';
import { add, mul, reshape, sub } from '../graph/ops.ts';
import type { LlamaConfig } from '../model/config.ts';
import { llamaDecoder, lmHead } from '../model/llama.ts';
import type { LoraConfig } from '../model/lora.ts';
import { loraTensorSpecs } from '../model/lora.ts';
import { WeightBinder, type WeightStore } from '../model/weights.ts';
import { maskedMeanNll } from './loss.ts';
import { adamwUpdate, clipByGlobalNorm, type AdamWConfig, type StepScalars } from './optimizer.ts';

export type StepKind = 'train_step' | 'grad_step' | 'apply_step' | 'eval_step';

export interface StepGraphOptions {
  model: LlamaConfig;
  weights: WeightStore;
  /** LoRA to train (or, for eval, to apply). */
  lora?: LoraConfig;
  /** Base tensors trained in full (full fine-tuning), by Hugging Face name. */
  fullyTrained?: readonly string[];
  batch: number;
  seq: number;
  optimizer: AdamWConfig;
  /** Seed for LoRA dropout masks. */
  seed: number;
  /** FFA-LoRA: train only the B factors; every lora_A is a graph input that never changes. */
  freezeLoraA?: boolean;
  /** Terms added to the gradient before clipping (see the header); each compiled in only when on. */
  gradientTerms?: GradientTerms;
}

export interface GradientTerms {
  /** FedProx: + proximal_mu * (theta - `${name}.anchor`). */
  proximal?: boolean;
  /** SCAFFOLD: + `${name}.correction`. */
  correction?: boolean;
  /** SCAFFOLD after AdamW: the step also subtracts lr * `${name}.step_correction` (see the header). */
  stepCorrection?: boolean;
}

/**
 * A tensor of the adapter (or a fully trained base tensor) as the graphs name it: the value itself,
 * and unless frozen, its Adam moments and their updates.
 */
export interface ParamSpec {
  name: string;
  shape: number[];
  /** An input only (FFA-LoRA's A): no gradient, no optimizer state, no output. */
  frozen?: boolean;
}

/** Names of graph inputs and outputs per trainable tensor; one place so host code and graphs agree. */
export const io = {
  param: (n: string) => n,
  adamM: (n: string) => `${n}.adam_m`,
  adamV: (n: string) => `${n}.adam_v`,
  grad: (n: string) => `${n}.grad`,
  next: (n: string) => `${n}.next`,
  anchor: (n: string) => `${n}.anchor`,
  correction: (n: string) => `${n}.correction`,
  stepCorrection: (n: string) => `${n}.step_correction`,
};

export const BATCH_INPUTS = [
  'input_ids',
  'target_ids',
  'loss_mask',
  'attention_bias',
  'rope_cos',
  'rope_sin',
] as const;
export const SCALAR_INPUTS = ['lr', 'bias_correction1', 'bias_correction2_sqrt'] as const;
/** The scalar input of FedProx's mu, present only when gradientTerms.proximal is on. */
export const PROXIMAL_MU = 'proximal_mu';

/** Every tensor the graphs take as a parameter, in a fixed order; FFA-LoRA's A factors marked frozen. */
export function trainableSpecs(
  o: Pick<StepGraphOptions, 'model' | 'weights' | 'lora' | 'fullyTrained' | 'freezeLoraA'>,
): ParamSpec[] {
  const specs: ParamSpec[] = o.lora
    ? loraTensorSpecs(o.model, o.lora).map((s) =>
        o.freezeLoraA && s.which === 'A'
          ? { name: s.name, shape: s.shape, frozen: true }
          : { name: s.name, shape: s.shape },
      )
    : [];
  for (const name of o.fullyTrained ?? []) {
    const e = o.weights.entries.get(name);
    if (!e) throw new Error(`cannot train ${name}: the base model has no such tensor`);
    specs.push({ name, shape: e.shape });
  }
  return specs;
}

function batchInputs(g: Graph, dtype: ElementType, o: StepGraphOptions) {
  const { batch: B, seq: T } = o;
  const hd = o.model.headDim;
  return {
    inputIds: g.input('input_ids', 'int64', [B, T]),
    // int32, not int64: WebGPU has no int64 Reshape/Unsqueeze, which the loss applies to targets.
    targetIds: g.input('target_ids', 'int32', [B, T]),
    lossMask: g.input('loss_mask', dtype, [B, T]),
    attentionBias: g.input('attention_bias', dtype, [B, T, T]),
    ropeCos: g.input('rope_cos', dtype, [B, T, hd]),
    ropeSin: g.input('rope_sin', dtype, [B, T, hd]),
  };
}

/** Forward pass and masked mean loss of one micro-batch; `params` maps trainable names to values. */
function forwardLoss(g: Graph, o: StepGraphOptions, params: Map<string, Value>, train: boolean) {
  const dtype = o.weights.dtype;
  const inputs = batchInputs(g, dtype, o);
  const fully = new Set(o.fullyTrained ?? []);
  const binder = new WeightBinder(g, o.weights, new Set());
  const weights = {
    has: (n: string) => binder.has(n),
    get: (n: string) => (fully.has(n) ? params.get(n)! : binder.get(n)),
  };
  const dropoutSeed = train && o.lora && o.lora.dropout > 0 ? g.input('dropout_seed', dtype, []) : undefined;
  const lora = o.lora ? { config: o.lora, tensors: params, dropoutSeed } : undefined;
  const { hidden } = llamaDecoder(o.model, weights, inputs, lora);
  const N = o.batch * o.seq;
  const logits = reshape(lmHead(o.model, weights, hidden), [N, o.model.vocabSize]);
  return maskedMeanNll(logits, reshape(inputs.targetIds, [N]), reshape(inputs.lossMask, [N]));
}

function scalarInputs(g: Graph, dtype: ElementType): StepScalars {
  return {
    lr: g.input('lr', dtype, []),
    biasCorrection1: g.input('bias_correction1', dtype, []),
    biasCorrection2Sqrt: g.input('bias_correction2_sqrt', dtype, []),
  };
}

/** The loss's gradients plus the header's gradient terms that are on (the same values when none is). */
function withGradientTerms(
  g: Graph,
  o: StepGraphOptions,
  specs: ParamSpec[],
  params: Map<string, Value>,
  grads: Value[],
): Value[] {
  const terms = o.gradientTerms ?? {};
  const dtype = o.weights.dtype;
  const mu = terms.proximal ? g.input(PROXIMAL_MU, dtype, []) : undefined;
  return specs.map((s, i) => {
    let grad = grads[i];
    if (mu) {
      const anchor = g.input(io.anchor(s.name), dtype, s.shape);
      grad = add(grad, mul(mu, sub(params.get(s.name)!, anchor)));
    }
    if (terms.correction) grad = add(grad, g.input(io.correction(s.name), dtype, s.shape));
    return grad;
  });
}

/** Gradient terms, clipping and AdamW over the trained (not frozen) tensors `specs`. */
function optimizerStep(
  g: Graph,
  o: StepGraphOptions,
  specs: ParamSpec[],
  params: Map<string, Value>,
  lossGrads: Value[],
) {
  const dtype = o.weights.dtype;
  const scalars = scalarInputs(g, dtype);
  const grads = withGradientTerms(g, o, specs, params, lossGrads);
  const clipped = clipByGlobalNorm(grads, o.optimizer.maxGradNorm);
  specs.forEach((s, i) => {
    const state = {
      param: params.get(s.name)!,
      m: g.input(io.adamM(s.name), dtype, s.shape),
      v: g.input(io.adamV(s.name), dtype, s.shape),
    };
    const next = adamwUpdate(state, clipped.grads[i], scalars, o.optimizer);
    const param = o.gradientTerms?.stepCorrection
      ? sub(next.param, mul(scalars.lr, g.input(io.stepCorrection(s.name), dtype, s.shape)))
      : next.param;
    g.output(param, io.next(io.param(s.name)));
    g.output(next.m, io.next(io.adamM(s.name)));
    g.output(next.v, io.next(io.adamV(s.name)));
  });
  return clipped.norm;
}

export function buildStepGraph(kind: StepKind, o: StepGraphOptions): Graph {
  const g = new Graph(kind);
  const dtype = o.weights.dtype;
  const all = trainableSpecs(o);
  const specs = all.filter((s) => !s.frozen);

  if (kind === 'apply_step') {
    // Frozen tensors take no part in an update, so apply_step does not even take them as inputs.
    const params = new Map(specs.map((s) => [s.name, g.input(io.param(s.name), dtype, s.shape)]));
    const grads = specs.map((s) => g.input(io.grad(s.name), dtype, s.shape));
    g.output(optimizerStep(g, o, specs, params, grads), 'grad_norm');
    return g;
  }

  const params = new Map(all.map((s) => [s.name, g.input(io.param(s.name), dtype, s.shape)]));
  const { loss, sum, count } = forwardLoss(g, o, params, kind !== 'eval_step');
  if (kind === 'eval_step') {
    g.output(sum, 'loss_sum');
    g.output(count, 'token_count');
    return g;
  }
  const grads = gradients(
    loss,
    specs.map((s) => params.get(s.name)!),
  );
  g.output(loss, 'loss');
  if (kind === 'train_step') {
    g.output(optimizerStep(g, o, specs, params, grads), 'grad_norm');
  } else {
    const scale = g.input('grad_scale', dtype, []);
    specs.forEach((s, i) => {
      const acc = g.input(io.grad(s.name), dtype, s.shape);
      g.output(add(acc, mul(grads[i], scale)), io.next(io.grad(s.name)));
    });
  }
  return g;
}
