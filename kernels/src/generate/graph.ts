// The forward graph used for generation: the same decoder as training, with a key/value cache.
// Batch, new-token and past lengths are symbolic, so one compiled graph serves the prompt (prefill)
// and every following token. Only the logits of one position (`logits_index`) are computed, not a
// [tokens, vocab] matrix.

import { Graph, type Value } from '../graph/ir.ts';
import { gather } from '../graph/ops.ts';
import type { LlamaConfig } from '../model/config.ts';
import { llamaDecoder, lmHead } from '../model/llama.ts';
import { loraTensorSpecs, type LoraConfig } from '../model/lora.ts';
import { WeightBinder, type WeightStore } from '../model/weights.ts';

export const pastKey = (layer: number) => `past.${layer}.key`;
export const pastValue = (layer: number) => `past.${layer}.value`;
export const presentKey = (layer: number) => `present.${layer}.key`;
export const presentValue = (layer: number) => `present.${layer}.value`;

export function buildForwardGraph(model: LlamaConfig, weights: WeightStore, lora?: LoraConfig): Graph {
  const g = new Graph('forward_kv');
  const dtype = weights.dtype;
  const B = 'batch';
  const T = 'seq';
  const S = 'past+seq'; // what the decoder's Concat of past and new keys names this dim
  const hd = model.headDim;
  const inputs = {
    inputIds: g.input('input_ids', 'int64', [B, T]),
    attentionBias: g.input('attention_bias', dtype, [B, T, S]),
    ropeCos: g.input('rope_cos', dtype, [B, T, hd]),
    ropeSin: g.input('rope_sin', dtype, [B, T, hd]),
    past: Array.from({ length: model.numLayers }, (_, i) => ({
      key: g.input(pastKey(i), dtype, [B, model.numKvHeads, 'past', hd]),
      value: g.input(pastValue(i), dtype, [B, model.numKvHeads, 'past', hd]),
    })),
  };
  const logitsIndex = g.input('logits_index', 'int64', []);
  const tensors = new Map<string, Value>(
    lora ? loraTensorSpecs(model, lora).map((s) => [s.name, g.input(s.name, dtype, s.shape)]) : [],
  );
  const w = new WeightBinder(g, weights);
  const { hidden, present } = llamaDecoder(model, w, inputs, lora ? { config: lora, tensors } : undefined);
  g.output(lmHead(model, w, gather(hidden, logitsIndex, 1)), 'logits');
  present!.forEach((p, i) => {
    g.output(p.key, presentKey(i));
    g.output(p.value, presentValue(i));
  });
  return g;
}
