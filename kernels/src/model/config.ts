// Llama-family architecture settings, read from a Hugging Face config.json and checked at the edge.

import { FeditError } from '@fedit/shared';

export interface LlamaConfig {
  /** The config.json model_type this came from: llama, mistral, qwen2. */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections (Qwen2, or llama's attention_bias, which adds o_proj's: hasOProjBias). */
  qkvBias: boolean;
  maxPositionEmbeddings: number;
  /** Rotary frequency scaling (config.json's rope_scaling); absent for plain rotary embeddings. */
  ropeScaling?: RopeScaling;
  /**
   * Mistral's sliding attention window: tokens attend to at most this many earlier tokens. The
   * graphs attend to the whole sequence, which is the same while sequences fit in the window, so
   * training and generation refuse longer ones. Absent when the model has none.
   */
  slidingWindow?: number;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
}

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;

/**
 * rope_scaling as Hugging Face's modeling_rope_utils applies it to the rotary inverse frequencies:
 * `linear` divides them all by `factor`; `llama3` (Llama 3.1/3.2) divides the low frequencies by
 * `factor`, keeps the high ones and blends in between (see ropeInverseFrequencies in train/batch.ts).
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export const SUPPORTED_ROPE_SCALING = ['default', 'linear', 'llama3'] as const;

export class ModelConfigError extends FeditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_CONFIG', message, options);
  }
}

function positiveInt(raw: Record<string, unknown>, key: string, source: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ModelConfigError(
      `${source}: "${key}" must be a positive integer, got ${JSON.stringify(raw[key])}`,
    );
  }
  return v;
}

function positiveNumber(raw: Record<string, unknown>, key: string, source: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !(v > 0)) {
    throw new ModelConfigError(
      `${source}: "${key}" must be a positive number, got ${JSON.stringify(raw[key])}`,
    );
  }
  return v;
}

/** Llama's attention_bias puts a bias on o_proj as well as q/k/v; Qwen2's attention has q/k/v bias only. */
export function hasOProjBias(cfg: Pick<LlamaConfig, 'modelType' | 'qkvBias'>): boolean {
  return cfg.modelType === 'llama' && cfg.qkvBias;
}

/** Parses a Hugging Face config.json object; `source` names the file in error messages. */
export function parseLlamaConfig(raw: unknown, source = 'config.json'): LlamaConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError(`${source}: expected a JSON object`);
  }
  const r = raw as Record<string, unknown>;
  const modelType = r.model_type;
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new ModelConfigError(
      `${source}: model_type ${JSON.stringify(modelType)} is not supported; fedit trains ${SUPPORTED_MODEL_TYPES.join(', ')} models`,
    );
  }
  const ropeScaling = parseRopeScaling(r.rope_scaling, source);
  const hiddenAct = r.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') {
    throw new ModelConfigError(
      `${source}: hidden_act ${JSON.stringify(hiddenAct)} is not supported; fedit's MLP is SwiGLU with "silu"`,
    );
  }
  if (r.mlp_bias === true) {
    throw new ModelConfigError(
      `${source}: "mlp_bias": true is not supported (gate/up/down projections with bias); fedit loads models without MLP bias`,
    );
  }
  const slidingWindow = parseSlidingWindow(r, modelType, source);
  const hiddenSize = positiveInt(r, 'hidden_size', source);
  const numHeads = positiveInt(r, 'num_attention_heads', source);
  const numKvHeads = positiveInt(r, 'num_key_value_heads', source, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ModelConfigError(
      `${source}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  const headDim = positiveInt(r, 'head_dim', source, hiddenSize / numHeads);
  if (headDim % 2 !== 0)
    throw new ModelConfigError(`${source}: head_dim (${headDim}) must be even for rotary embeddings`);
  const optionalInt = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : undefined);
  return {
    modelType,
    vocabSize: positiveInt(r, 'vocab_size', source),
    hiddenSize,
    intermediateSize: positiveInt(r, 'intermediate_size', source),
    numLayers: positiveInt(r, 'num_hidden_layers', source),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: positiveNumber(r, 'rms_norm_eps', source, 1e-6),
    ropeTheta: positiveNumber(r, 'rope_theta', source, 10000),
    // LlamaConfig, MistralConfig and Qwen2Config all default tie_word_embeddings to false
    tieWordEmbeddings: Boolean(r.tie_word_embeddings),
    // Qwen2 has q/k/v bias always; llama's attention_bias also puts one on o_proj (hasOProjBias);
    // Mistral's attention has no bias whatever the config says (MistralAttention ignores it).
    qkvBias: modelType === 'qwen2' ? true : modelType === 'llama' && r.attention_bias === true,
    maxPositionEmbeddings: positiveInt(r, 'max_position_embeddings', source, 2048),
    ...(ropeScaling ? { ropeScaling } : {}),
    ...(slidingWindow !== undefined ? { slidingWindow } : {}),
    bosTokenId: optionalInt('bos_token_id'),
    eosTokenId: Array.isArray(r.eos_token_id) ? (r.eos_token_id as number[]) : optionalInt('eos_token_id'),
    padTokenId: optionalInt('pad_token_id'),
  };
}

function parseRopeScaling(raw: unknown, source: string): RopeScaling | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ModelConfigError(
      `${source}: "rope_scaling" must be an object or null, got ${JSON.stringify(raw)}`,
    );
  }
  const r = raw as Record<string, unknown>;
  // Newer configs say rope_type, older ones type (transformers reads both the same way).
  const type = r.rope_type ?? r.type ?? 'default';
  const field = (key: string) => {
    const v = r[key];
    if (typeof v !== 'number' || !(v > 0)) {
      throw new ModelConfigError(
        `${source}: rope_scaling "${key}" must be a positive number for rope_type ${JSON.stringify(type)}, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  switch (type) {
    case 'default':
      return undefined;
    case 'linear':
      return { type: 'linear', factor: field('factor') };
    case 'llama3': {
      const scaling = {
        type: 'llama3',
        factor: field('factor'),
        lowFreqFactor: field('low_freq_factor'),
        highFreqFactor: field('high_freq_factor'),
        originalMaxPositionEmbeddings: field('original_max_position_embeddings'),
      } as const;
      // the blend divides by their difference
      if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) {
        throw new ModelConfigError(
          `${source}: rope_scaling "high_freq_factor" (${scaling.highFreqFactor}) must be greater than "low_freq_factor" (${scaling.lowFreqFactor})`,
        );
      }
      return scaling;
    }
    default:
      throw new ModelConfigError(
        `${source}: rope_scaling type ${JSON.stringify(type)} is not supported; fedit supports rope_scaling ${SUPPORTED_ROPE_SCALING.join(', ')} (or none)`,
      );
  }
}

/**
 * The attention window that applies, if any. Mistral: sliding_window (null in v0.2 and later).
 * Qwen2: only when use_sliding_window is true (its configs carry a sliding_window that is off).
 * Llama has none.
 */
function parseSlidingWindow(
  r: Record<string, unknown>,
  modelType: string,
  source: string,
): number | undefined {
  if (modelType === 'llama' || r.sliding_window === undefined || r.sliding_window === null) return undefined;
  if (modelType === 'qwen2' && r.use_sliding_window !== true) return undefined;
  return positiveInt(r, 'sliding_window', source);
}

/** Writes a config back in Hugging Face's config.json vocabulary (for tiny test checkpoints and exports). */
export function toHfConfig(c: LlamaConfig): Record<string, unknown> {
  return {
    architectures: [
      c.modelType === 'qwen2'
        ? 'Qwen2ForCausalLM'
        : c.modelType === 'mistral'
          ? 'MistralForCausalLM'
          : 'LlamaForCausalLM',
    ],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tieWordEmbeddings,
    attention_bias: c.qkvBias,
    max_position_embeddings: c.maxPositionEmbeddings,
    ...(c.ropeScaling ? { rope_scaling: toHfRopeScaling(c.ropeScaling) } : {}),
    ...(c.slidingWindow !== undefined ? { sliding_window: c.slidingWindow } : {}),
    hidden_act: 'silu',
    torch_dtype: 'float32',
    ...(c.bosTokenId !== undefined ? { bos_token_id: c.bosTokenId } : {}),
    ...(c.eosTokenId !== undefined ? { eos_token_id: c.eosTokenId } : {}),
    ...(c.padTokenId !== undefined ? { pad_token_id: c.padTokenId } : {}),
  };
}

function toHfRopeScaling(s: RopeScaling): Record<string, unknown> {
  return s.type === 'linear'
    ? { rope_type: 'linear', factor: s.factor }
    : {
        rope_type: 'llama3',
        factor: s.factor,
        low_freq_factor: s.lowFreqFactor,
        high_freq_factor: s.highFreqFactor,
        original_max_position_embeddings: s.originalMaxPositionEmbeddings,
      };
}

/** Shapes of public checkpoints (weights random), for benchmarks and tests. Same as the PyTorch reference's presets. */
export const PRESETS: Record<string, LlamaConfig> = {
  tiny: preset({
    vocabSize: 256,
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    tieWordEmbeddings: true,
  }),
  'smollm2-135m': preset({
    vocabSize: 49152,
    hiddenSize: 576,
    intermediateSize: 1536,
    numLayers: 30,
    numHeads: 9,
    numKvHeads: 3,
    ropeTheta: 100000,
    rmsNormEps: 1e-5,
    tieWordEmbeddings: true,
  }),
  'qwen2.5-0.5b': preset({
    modelType: 'qwen2',
    vocabSize: 151936,
    hiddenSize: 896,
    intermediateSize: 4864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    qkvBias: true,
  }),
};

function preset(
  p: Partial<LlamaConfig> & Pick<LlamaConfig, 'vocabSize' | 'hiddenSize' | 'numHeads'>,
): LlamaConfig {
  return {
    modelType: 'llama',
    intermediateSize: 4 * p.hiddenSize,
    numLayers: 2,
    numKvHeads: p.numHeads,
    headDim: p.hiddenSize / p.numHeads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    qkvBias: false,
    maxPositionEmbeddings: 8192,
    ...p,
  };
}
