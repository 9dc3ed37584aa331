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
  /** Bias on q/k/v projections (Qwen2, or llama's attention_bias). */
  qkvBias: boolean;
  maxPositionEmbeddings: number;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
}

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;

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
  const ropeScaling = r.rope_scaling as { type?: string; rope_type?: string } | null | undefined;
  if (ropeScaling && (ropeScaling.rope_type ?? ropeScaling.type ?? 'default') !== 'default') {
    throw new ModelConfigError(
      `${source}: rope_scaling ${JSON.stringify(ropeScaling.rope_type ?? ropeScaling.type)} is not supported yet (only plain rotary embeddings)`,
    );
  }
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
    qkvBias: modelType === 'qwen2' ? true : Boolean(r.attention_bias),
    maxPositionEmbeddings: positiveInt(r, 'max_position_embeddings', source, 2048),
    bosTokenId: optionalInt('bos_token_id'),
    eosTokenId: Array.isArray(r.eos_token_id) ? (r.eos_token_id as number[]) : optionalInt('eos_token_id'),
    padTokenId: optionalInt('pad_token_id'),
  };
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
    hidden_act: 'silu',
    torch_dtype: 'float32',
    ...(c.bosTokenId !== undefined ? { bos_token_id: c.bosTokenId } : {}),
    ...(c.eosTokenId !== undefined ? { eos_token_id: c.eosTokenId } : {}),
    ...(c.padTokenId !== undefined ? { pad_token_id: c.padTokenId } : {}),
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
