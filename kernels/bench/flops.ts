// How many floating-point operations one LoRA training step does, counted the way the benchmark
// reports it: 4 x (matmul parameters) x tokens — forward (2) plus the backward pass to activations
// (2); frozen weights get no weight gradient — plus attention's score and value products (forward
// 4*B*heads*T^2*headDim, backward twice that), plus the LoRA matmuls (6 x LoRA parameters x tokens).

import type { LlamaConfig } from '../src/model/config.ts';
import { type LoraConfig, targetShape } from '../src/model/lora.ts';

export function matmulParameters(c: LlamaConfig): number {
  const perLayer = (['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const)
    .map((t) => targetShape(c, t))
    .reduce((s, [o, i]) => s + o * i, 0);
  return c.numLayers * perLayer + c.vocabSize * c.hiddenSize; // + LM head
}

export function loraParameters(c: LlamaConfig, l: LoraConfig): number {
  return c.numLayers * l.targets.map((t) => targetShape(c, t)).reduce((s, [o, i]) => s + l.rank * (o + i), 0);
}

export function trainStepFlops(c: LlamaConfig, l: LoraConfig, batch: number, seq: number): number {
  const tokens = batch * seq;
  const dense = 4 * matmulParameters(c) * tokens;
  const attention = 3 * 4 * batch * c.numHeads * seq * seq * c.headDim * c.numLayers;
  const lora = 6 * loraParameters(c, l) * tokens;
  return dense + attention + lora;
}
