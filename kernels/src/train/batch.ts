// Host-side batch preparation: token rows -> the tensors a step graph takes. The shift from labels
// to next-token targets, the padding/causal mask and the rotary tables are made here, once per
// batch, so graphs stay free of integer mask logic that some execution providers lack.

import * as ort from 'onnxruntime-node';
import type { LlamaConfig } from '../model/config.ts';

/** Hugging Face convention: labels[t] = token t, or -100 where it must not be learnt. */
export interface TokenRow {
  inputIds: number[];
  labels: number[];
  /**
   * Optional packing: example index per token (tokens attend only within their own example,
   * positions restart at each example). Omit for one example per row.
   */
  segments?: number[];
}

export const IGNORE_INDEX = -100;
/** Additive mask value: large enough that exp() underflows to exactly 0, finite so no NaN appears. */
export const MASKED = -1e9;

export type FloatArray = Float32Array | Float64Array;

export interface BatchTensors {
  input_ids: ort.Tensor;
  target_ids: ort.Tensor;
  loss_mask: ort.Tensor;
  attention_bias: ort.Tensor;
  rope_cos: ort.Tensor;
  rope_sin: ort.Tensor;
  /** How many target tokens count in the loss. */
  targetTokens: number;
}

/**
 * The rotary inverse frequencies, rope_scaling applied, as Hugging Face's modeling_rope_utils
 * computes them. Every rotary table (training, evaluation, generation with its KV cache) comes from
 * here through fillRope, so they cannot disagree.
 */
export function ropeInverseFrequencies(
  cfg: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>,
): Float64Array {
  const half = cfg.headDim / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => 1 / cfg.ropeTheta ** ((2 * i) / cfg.headDim));
  const s = cfg.ropeScaling;
  if (!s) return inv;
  if (s.type === 'linear') return inv.map((f) => f / s.factor);
  // llama3: frequencies whose wavelength is longer than the original context / low_freq_factor
  // are slowed down by `factor` (interpolated), those shorter than original / high_freq_factor
  // are kept, and in between the two are blended linearly in original_context / wavelength.
  const lowFreqWavelength = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelength = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return inv.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < highFreqWavelength) return f;
    if (wavelength > lowFreqWavelength) return f / s.factor;
    const smooth =
      (s.originalMaxPositionEmbeddings / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** Fills rotary tables for `positions` into cos/sin at `offset` (rows of headDim values). */
export function fillRope(
  cfg: LlamaConfig,
  positions: ArrayLike<number>,
  cos: FloatArray,
  sin: FloatArray,
  offset = 0,
): void {
  const inv = ropeInverseFrequencies(cfg);
  const hd = cfg.headDim;
  const half = hd / 2;
  for (let t = 0; t < positions.length; t++) {
    const base = offset + t * hd;
    for (let i = 0; i < half; i++) {
      const a = positions[t] * inv[i];
      cos[base + i] = cos[base + i + half] = Math.cos(a);
      sin[base + i] = sin[base + i + half] = Math.sin(a);
    }
  }
}

export function makeBatch(
  cfg: LlamaConfig,
  rows: TokenRow[],
  batch: number,
  seq: number,
  dtype: 'float32' | 'float64' = 'float32',
): BatchTensors {
  if (rows.length > batch) throw new Error(`makeBatch: ${rows.length} rows for a batch of ${batch}`);
  const F = dtype === 'float32' ? Float32Array : Float64Array;
  const ids = new BigInt64Array(batch * seq);
  // int32: the loss reshapes targets in the graph, and WebGPU has no int64 Reshape/Unsqueeze.
  const targets = new Int32Array(batch * seq);
  const mask = new F(batch * seq);
  const bias = new F(batch * seq * seq).fill(MASKED);
  const cos = new F(batch * seq * cfg.headDim);
  const sin = new F(batch * seq * cfg.headDim);
  let targetTokens = 0;

  for (let b = 0; b < batch; b++) {
    const row = rows[b];
    const n = row ? row.inputIds.length : 0;
    if (n > seq) throw new Error(`makeBatch: a row has ${n} tokens, more than the sequence bucket ${seq}`);
    if (row && row.labels.length !== n) throw new Error('makeBatch: labels and inputIds differ in length');
    const seg = row?.segments;
    const positions = new Array<number>(seq).fill(0);
    for (let t = 0; t < n; t++) {
      ids[b * seq + t] = BigInt(row.inputIds[t]);
      positions[t] = seg && t > 0 && seg[t] === seg[t - 1] ? positions[t - 1] + 1 : seg && t > 0 ? 0 : t;
      // target at t is token t+1, counted when its label is not ignored (and it is in the same example)
      if (t + 1 < n && row.labels[t + 1] !== IGNORE_INDEX && (!seg || seg[t + 1] === seg[t])) {
        targets[b * seq + t] = row.labels[t + 1];
        mask[b * seq + t] = 1;
        targetTokens++;
      }
    }
    for (let i = 0; i < seq; i++) {
      const rowBase = (b * seq + i) * seq;
      if (i >= n) {
        bias[rowBase + i] = 0; // a padding query attends to itself only: no fully masked rows
        continue;
      }
      for (let j = 0; j <= i; j++) if (!seg || seg[j] === seg[i]) bias[rowBase + j] = 0;
    }
    fillRope(cfg, positions, cos, sin, b * seq * cfg.headDim);
  }
  const t = (data: FloatArray | BigInt64Array | Int32Array, shape: number[]) =>
    new ort.Tensor(
      data instanceof BigInt64Array ? 'int64' : data instanceof Int32Array ? 'int32' : dtype,
      data,
      shape,
    );
  return {
    input_ids: t(ids, [batch, seq]),
    target_ids: t(targets, [batch, seq]),
    loss_mask: t(mask, [batch, seq]),
    attention_bias: t(bias, [batch, seq, seq]),
    rope_cos: t(cos, [batch, seq, cfg.headDim]),
    rope_sin: t(sin, [batch, seq, cfg.headDim]),
    targetTokens,
  };
}
