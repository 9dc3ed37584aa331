// LoRA as PEFT defines it: y = W x + (B A dropout(x)) * alpha / r, A initialised with
// kaiming_uniform(a=sqrt(5)) (uniform in +-1/sqrt(in_features)), B zero. Tensor names are PEFT's,
// so an adapter fedit writes loads in PEFT unchanged.

import { FeditError } from '@fedit/shared';
import type { LlamaConfig } from './config.ts';

export const LORA_TARGETS = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
}

export class LoraConfigError extends FeditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('LORA_CONFIG', message, options);
  }
}

export function validateLoraConfig(c: LoraConfig): LoraConfig {
  if (!Number.isInteger(c.rank) || c.rank <= 0)
    throw new LoraConfigError(`LoRA rank must be a positive integer, got ${c.rank}`);
  if (!(c.alpha > 0)) throw new LoraConfigError(`LoRA alpha must be positive, got ${c.alpha}`);
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw new LoraConfigError(`LoRA dropout must be in [0, 1), got ${c.dropout}`);
  if (c.targets.length === 0) throw new LoraConfigError('LoRA needs at least one target module');
  for (const t of c.targets) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new LoraConfigError(`unknown LoRA target "${t}"; choose from ${LORA_TARGETS.join(', ')}`);
    }
  }
  return c;
}

export const loraScale = (c: LoraConfig): number => c.alpha / c.rank;

const MODULE_OF: Record<LoraTarget, 'self_attn' | 'mlp'> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

/** The base weight a target adapts, e.g. model.layers.3.self_attn.q_proj.weight. */
export function baseWeightName(layer: number, target: LoraTarget): string {
  return `model.layers.${layer}.${MODULE_OF[target]}.${target}.weight`;
}

/** PEFT's tensor name: base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight */
export function loraTensorName(layer: number, target: LoraTarget, which: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${MODULE_OF[target]}.${target}.lora_${which}.weight`;
}

/** [out_features, in_features] of a target's base weight. */
export function targetShape(c: LlamaConfig, target: LoraTarget): [number, number] {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const f = c.intermediateSize;
  switch (target) {
    case 'q_proj':
      return [q, d];
    case 'k_proj':
    case 'v_proj':
      return [kv, d];
    case 'o_proj':
      return [d, q];
    case 'gate_proj':
    case 'up_proj':
      return [f, d];
    case 'down_proj':
      return [d, f];
  }
}

export interface LoraTensorSpec {
  name: string;
  layer: number;
  target: LoraTarget;
  which: 'A' | 'B';
  shape: [number, number];
}

/** Every LoRA tensor of a model, in a fixed order (layer, then target, then A before B). */
export function loraTensorSpecs(model: LlamaConfig, lora: LoraConfig): LoraTensorSpec[] {
  const specs: LoraTensorSpec[] = [];
  for (let layer = 0; layer < model.numLayers; layer++) {
    for (const target of LORA_TARGETS) {
      if (!lora.targets.includes(target)) continue;
      const [out, inF] = targetShape(model, target);
      specs.push({
        name: loraTensorName(layer, target, 'A'),
        layer,
        target,
        which: 'A',
        shape: [lora.rank, inF],
      });
      specs.push({
        name: loraTensorName(layer, target, 'B'),
        layer,
        target,
        which: 'B',
        shape: [out, lora.rank],
      });
    }
  }
  return specs;
}

/** PEFT's initial adapter: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0. `random` yields numbers in [0, 1). */
export function initLoraTensors(
  model: LlamaConfig,
  lora: LoraConfig,
  random: () => number,
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const s of loraTensorSpecs(model, lora)) {
    const data = new Float32Array(s.shape[0] * s.shape[1]);
    if (s.which === 'A') {
      const bound = 1 / Math.sqrt(s.shape[1]);
      for (let i = 0; i < data.length; i++) data[i] = (random() * 2 - 1) * bound;
    }
    out.set(s.name, data);
  }
  return out;
}
