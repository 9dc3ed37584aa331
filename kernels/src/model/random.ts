// Random Llama-family weights with the names and shapes of a Hugging Face checkpoint, for tests and
// benchmarks (nothing is ever downloaded). Same recipe as the PyTorch reference: N(0, 0.02) matrices,
// norms at one.

import { hasOProjBias, type LlamaConfig } from './config.ts';
import type { NamedTensor } from './weights.ts';

/** Deterministic uniforms in (0, 1) from a seed (xorshift32). */
export function uniformSampler(seed: number): () => number {
  let s = (Math.imul(seed | 0, 2654435761) ^ 0x9e3779b9) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
}

/** Deterministic standard normals (Box-Muller over uniformSampler); fast enough for 100M+ values. */
export function normalSampler(seed: number): () => number {
  const uniform = uniformSampler(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const v = spare;
      spare = undefined;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const th = 2 * Math.PI * uniform();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

export function* randomLlamaTensors(cfg: LlamaConfig, seed = 0, std = 0.02): Generator<NamedTensor> {
  const normal = normalSampler(seed);
  const d = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const f = cfg.intermediateSize;
  const rand = (name: string, shape: number[]): NamedTensor => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = normal() * std;
    return [name, shape, data];
  };
  const ones = (name: string, n: number): NamedTensor => [name, [n], new Float32Array(n).fill(1)];
  yield rand('model.embed_tokens.weight', [cfg.vocabSize, d]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    yield ones(`${p}.input_layernorm.weight`, d);
    yield ones(`${p}.post_attention_layernorm.weight`, d);
    yield rand(`${p}.self_attn.q_proj.weight`, [q, d]);
    yield rand(`${p}.self_attn.k_proj.weight`, [kv, d]);
    yield rand(`${p}.self_attn.v_proj.weight`, [kv, d]);
    yield rand(`${p}.self_attn.o_proj.weight`, [d, q]);
    if (cfg.qkvBias) {
      yield rand(`${p}.self_attn.q_proj.bias`, [q]);
      yield rand(`${p}.self_attn.k_proj.bias`, [kv]);
      yield rand(`${p}.self_attn.v_proj.bias`, [kv]);
    }
    if (hasOProjBias(cfg)) yield rand(`${p}.self_attn.o_proj.bias`, [d]);
    yield rand(`${p}.mlp.gate_proj.weight`, [f, d]);
    yield rand(`${p}.mlp.up_proj.weight`, [f, d]);
    yield rand(`${p}.mlp.down_proj.weight`, [d, f]);
  }
  yield ones('model.norm.weight', d);
  if (!cfg.tieWordEmbeddings) yield rand('lm_head.weight', [cfg.vocabSize, d]);
}
