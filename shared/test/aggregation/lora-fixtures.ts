// Shared by the product-SVD tests: seeded float32 values and a two-module adapter schema (global
// rank 4) with participants' updates at any rank.

import type { AdapterSchema } from '@fedit/shared';

/** Deterministic float32 values in (-scale, scale) (mulberry32). */
export function randomF32(length: number, seed: number, scale = 1): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length }, () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return scale * (((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1);
  });
}

export const A_Q = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
export const B_Q = 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight';
export const A_D = 'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight';
export const B_D = 'base_model.model.model.layers.0.mlp.down_proj.lora_B.weight';
// q_proj: in 6, out 8; down_proj: in 10, out 6; global rank 4. Names in UTF-8 order.
export const SCHEMA: AdapterSchema = new Map<string, number[]>([
  [A_D, [4, 10]],
  [B_D, [6, 4]],
  [A_Q, [4, 6]],
  [B_Q, [8, 4]],
]);

/** A participant's update at `rank` for SCHEMA's modules. */
export function update(rank: number, seed: number): Map<string, Float32Array> {
  return new Map([
    [A_D, randomF32(rank * 10, seed)],
    [B_D, randomF32(6 * rank, seed + 1, 0.1)],
    [A_Q, randomF32(rank * 6, seed + 2)],
    [B_Q, randomF32(8 * rank, seed + 3, 0.1)],
  ]);
}
