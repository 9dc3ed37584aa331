// The compiled programs of local training, all built from the same decoder code:
//   train_step  forward + loss + backward + clip + AdamW in one graph (one micro-batch per step)
//   grad_step   forward + loss + backward, adding scaled gradients into accumulators (micro-batches)
//   apply_step  clip + AdamW from accumulated gradients
//   eval_step   forward + loss sum and token count (no backward)
// One graph per (model, LoRA config, batch x sequence bucket); shapes are static so ONNX Runtime
// can plan memory and pick kernels once.

import { Graph, type ElementType, type Value } from '../graph/ir.ts';
import { gradients } from '../graph/autodiff.ts';
import { add, mul, reshape } from '../graph/ops.ts';
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
}

/** A trainable tensor as the graphs name it: the value itself, its Adam moments, and their updates. */
export interface ParamSpec {
  name: string;
  shape: number[];
}

/** Names of graph inputs and outputs per trainable tensor; one place so host code and graphs agree. */
export const io = {
  param: (n: string) => n,
  adamM: (n: string) => `${n}.adam_m`,
  adamV: (n: string) => `${n}.adam_v`,
  grad: (n: string) => `${n}.grad`,
  next: (n: string) => `${n}.next`,
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

export function trainableSpecs(
  o: Pick<StepGraphOptions, 'model' | 'weights' | 'lora' | 'fullyTrained'>,
): ParamSpec[] {
  const specs: ParamSpec[] = o.lora
    ? loraTensorSpecs(o.model, o.lora).map((s) => ({ name: s.name, shape: s.shape }))
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

function optimizerStep(
  g: Graph,
  o: StepGraphOptions,
  specs: ParamSpec[],
  params: Map<string, Value>,
  grads: Value[],
) {
  const dtype = o.weights.dtype;
  const scalars = scalarInputs(g, dtype);
  const clipped = clipByGlobalNorm(grads, o.optimizer.maxGradNorm);
  specs.forEach((s, i) => {
    const state = {
      param: params.get(s.name)!,
      m: g.input(io.adamM(s.name), dtype, s.shape),
      v: g.input(io.adamV(s.name), dtype, s.shape),
    };
    const next = adamwUpdate(state, clipped.grads[i], scalars, o.optimizer);
    g.output(next.param, io.next(io.param(s.name)));
    g.output(next.m, io.next(io.adamM(s.name)));
    g.output(next.v, io.next(io.adamV(s.name)));
  });
  return clipped.norm;
}

export function buildStepGraph(kind: StepKind, o: StepGraphOptions): Graph {
  const g = new Graph(kind);
  const dtype = o.weights.dtype;
  const specs = trainableSpecs(o);
  const params = new Map(specs.map((s) => [s.name, g.input(io.param(s.name), dtype, s.shape)]));

  if (kind === 'apply_step') {
    const grads = specs.map((s) => g.input(io.grad(s.name), dtype, s.shape));
    g.output(optimizerStep(g, o, specs, params, grads), 'grad_norm');
    return g;
  }

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
