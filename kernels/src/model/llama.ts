// The Llama-family decoder (Llama, Mistral, Qwen2, SmolLM) as graph-building code, following
// Hugging Face's modeling_llama: RMSNorm, rotary embeddings (rotate-half), grouped-query attention
// with an additive mask, SwiGLU MLP, tied or untied LM head, optional q/k/v bias, and LoRA on any of
// the seven projections. Training, evaluation and generation graphs are all built from this file.

import type { Value } from '../graph/ir.ts';
import {
  add,
  concat,
  div,
  gather,
  matmul,
  mul,
  neg,
  pow,
  reduceMean,
  reshape,
  sigmoid,
  softmax,
  split,
  sqrt,
  transpose,
  unsqueeze,
} from '../graph/ops.ts';
import type { LlamaConfig } from './config.ts';
import type { LoraConfig, LoraTarget } from './lora.ts';
import { loraScale, loraTensorName } from './lora.ts';
import { hashDropout } from './dropout.ts';

/** Looks up a base weight by its Hugging Face name (frozen initializer or trainable input). */
export interface BaseWeights {
  get(name: string): Value;
  has(name: string): boolean;
}

export interface LoraBinding {
  config: LoraConfig;
  /** PEFT-named LoRA tensors (graph inputs). */
  tensors: ReadonlyMap<string, Value>;
  /** Scalar graph input that seeds LoRA dropout masks (training graphs only; none = no dropout). */
  dropoutSeed?: Value;
}

export interface DecoderInputs {
  /** int64 [B, T] */
  inputIds: Value;
  /** Additive attention mask [B, T, S] (0 to attend, a large negative number not to); S = past + T. */
  attentionBias: Value;
  /** Rotary tables for each token's position, [B, T, headDim]. */
  ropeCos: Value;
  ropeSin: Value;
  /** Per layer key/value cache from earlier tokens, [B, kvHeads, P, headDim] each (generation only). */
  past?: { key: Value; value: Value }[];
}

export interface DecoderOutputs {
  /** Final-norm hidden states [B, T, hidden]. */
  hidden: Value;
  /** Per layer keys/values including this call's tokens (when `past` was given). */
  present?: { key: Value; value: Value }[];
}

function rmsNorm(x: Value, weight: Value, eps: number): Value {
  // x / sqrt(mean(x^2) + eps) * w; written as Div of Sqrt so ONNX Runtime can fuse the forward.
  const variance = reduceMean(pow(x, 2), [-1], true);
  return mul(div(x, sqrt(add(variance, eps))), weight);
}

/** Rotate-half rotary embedding: x * cos + concat(-x2, x1) * sin. */
function rotary(x: Value, cos: Value, sin: Value): Value {
  const half = (x.shape[x.rank - 1] as number) / 2;
  const [x1, x2] = split(x, [half, half], -1);
  return add(mul(x, cos), mul(concat([neg(x2), x1], -1), sin));
}

export function llamaDecoder(
  cfg: LlamaConfig,
  w: BaseWeights,
  inputs: DecoderInputs,
  lora?: LoraBinding,
): DecoderOutputs {
  const [B, T] = inputs.inputIds.shape;
  const { numHeads: nh, numKvHeads: nkv, headDim: hd } = cfg;
  const rep = nh / nkv;
  const scale = lora ? loraScale(lora.config) : 0;
  let dropoutSite = 0;

  const linear = (layer: number, module: 'self_attn' | 'mlp', target: LoraTarget, x: Value): Value => {
    const prefix = `model.layers.${layer}.${module}.${target}`;
    const weight = w.get(`${prefix}.weight`);
    let y = matmul(x, transpose(weight, [1, 0]));
    if (w.has(`${prefix}.bias`)) y = add(y, w.get(`${prefix}.bias`));
    if (lora?.config.targets.includes(target)) {
      const A = lora.tensors.get(loraTensorName(layer, target, 'A'))!;
      const Bm = lora.tensors.get(loraTensorName(layer, target, 'B'))!;
      const site = dropoutSite++;
      const xin =
        lora.dropoutSeed && lora.config.dropout > 0
          ? hashDropout(x, lora.config.dropout, lora.dropoutSeed, site)
          : x;
      const delta = matmul(matmul(xin, transpose(A, [1, 0])), transpose(Bm, [1, 0]));
      y = add(y, mul(delta, scale));
    }
    return y;
  };

  // Rotary tables broadcast over heads: q is [B, nkv, rep, T, hd], k is [B, nkv, T, hd].
  const cos4 = unsqueeze(inputs.ropeCos, [1]);
  const sin4 = unsqueeze(inputs.ropeSin, [1]);
  const cos5 = unsqueeze(cos4, [1]);
  const sin5 = unsqueeze(sin4, [1]);
  const bias = unsqueeze(inputs.attentionBias, [1, 2]); // [B, 1, 1, T, S]
  const attnScale = 1 / Math.sqrt(hd);

  let x = gather(w.get('model.embed_tokens.weight'), inputs.inputIds, 0);
  const present: { key: Value; value: Value }[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const h = rmsNorm(x, w.get(`${p}.input_layernorm.weight`), cfg.rmsNormEps);
    // Grouped-query attention without repeating k/v: query heads are grouped as [nkv, rep] (head
    // j*rep + r reads kv head j, as repeat_interleave does) and MatMul broadcasts over `rep`.
    const q = transpose(reshape(linear(i, 'self_attn', 'q_proj', h), [B, T, nkv, rep, hd]), [0, 2, 3, 1, 4]);
    let k = rotary(
      transpose(reshape(linear(i, 'self_attn', 'k_proj', h), [B, T, nkv, hd]), [0, 2, 1, 3]),
      cos4,
      sin4,
    );
    let v = transpose(reshape(linear(i, 'self_attn', 'v_proj', h), [B, T, nkv, hd]), [0, 2, 1, 3]);
    if (inputs.past) {
      k = concat([inputs.past[i].key, k], 2);
      v = concat([inputs.past[i].value, v], 2);
      present.push({ key: k, value: v });
    }
    const qr = rotary(mul(q, attnScale), cos5, sin5);
    const k5 = unsqueeze(k, [2]); // [B, nkv, 1, S, hd]
    const v5 = unsqueeze(v, [2]);
    const scores = add(matmul(qr, transpose(k5, [0, 1, 2, 4, 3])), bias);
    const attn = matmul(softmax(scores, -1), v5); // [B, nkv, rep, T, hd]
    const merged = reshape(transpose(attn, [0, 3, 1, 2, 4]), [B, T, nh * hd]);
    x = add(x, linear(i, 'self_attn', 'o_proj', merged));

    const h2 = rmsNorm(x, w.get(`${p}.post_attention_layernorm.weight`), cfg.rmsNormEps);
    const gate = linear(i, 'mlp', 'gate_proj', h2);
    const up = linear(i, 'mlp', 'up_proj', h2);
    x = add(x, linear(i, 'mlp', 'down_proj', mul(mul(gate, sigmoid(gate)), up)));
  }
  const hidden = rmsNorm(x, w.get('model.norm.weight'), cfg.rmsNormEps);
  return inputs.past ? { hidden, present } : { hidden };
}

/** Logits [.., vocab] from final hidden states; the head is the embedding matrix when tied. */
export function lmHead(cfg: LlamaConfig, w: BaseWeights, hidden: Value): Value {
  const head = w.get(cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  return matmul(hidden, transpose(head, [1, 0]));
}
