// Token-by-token generation with a key/value cache: one prefill run over the prompt, then one run
// per new token. Sampling (greedy, temperature, top-p) happens on the host from the last logits.

import * as ort from 'onnxruntime-node';
import { ModelConfigError, type LlamaConfig } from '../model/config.ts';
import { loraTensorSpecs, type LoraConfig } from '../model/lora.ts';
import { uniformSampler } from '../model/random.ts';
import type { WeightStore } from '../model/weights.ts';
import { createSession, type CompiledSession, type ExecutionProvider } from '../runtime/session.ts';
import { fillRope, MASKED } from '../train/batch.ts';
import { buildForwardGraph, pastKey, pastValue, presentKey, presentValue } from './graph.ts';

export interface SamplingOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature?: number;
  /** Nucleus sampling mass (1 = off). */
  topP?: number;
  /** Token ids that end generation (not yielded). */
  stopTokens?: readonly number[];
  seed?: number;
}

export interface GeneratorOptions {
  model: LlamaConfig;
  weights: WeightStore;
  lora?: { config: LoraConfig; tensors: ReadonlyMap<string, Float32Array> };
  provider?: ExecutionProvider;
  threads?: number;
  /**
   * How many token ids the tokenizer has (Tokenizer.vocabSize). Models often pad their embedding
   * table past it (Qwen2.5: 151936 rows for 151665 tokens); ids at or above it are never picked,
   * as they could not be decoded. Default: the model's whole vocabulary.
   */
  tokenizerVocabSize?: number;
}

/** Picks the next token from logits: argmax, or a temperature/top-p sample. */
export function sampleToken(
  logits: Float32Array,
  temperature: number,
  topP: number,
  random: () => number,
): number {
  if (!(temperature > 0)) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  const probs = Float64Array.from(logits, (l) => Math.exp((l - max) / temperature));
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
  const total = probs.reduce((a, b) => a + b, 0);
  let kept = 0;
  let cut = order.length;
  for (let i = 0; i < order.length; i++) {
    kept += probs[order[i]] / total;
    if (kept >= topP) {
      cut = i + 1;
      break;
    }
  }
  const nucleus = order.slice(0, cut);
  const mass = nucleus.reduce((s, i) => s + probs[i], 0);
  let r = random() * mass;
  for (const i of nucleus) {
    r -= probs[i];
    if (r <= 0) return i;
  }
  return nucleus[nucleus.length - 1];
}

export class Generator {
  private constructor(
    private readonly options: GeneratorOptions,
    private readonly session: CompiledSession,
  ) {}

  static async create(options: GeneratorOptions): Promise<Generator> {
    const graph = buildForwardGraph(options.model, options.weights, options.lora?.config);
    const session = await createSession(graph, {
      provider: options.provider,
      threads: options.threads,
      modelDir: options.weights.dir,
    });
    return new Generator(options, session);
  }

  private floats(n: number): Float32Array | Float64Array {
    return this.options.weights.dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  }

  /** Runs `tokens` after `pastLength` cached tokens; returns the last position's logits and the new cache. */
  async forward(tokens: number[], cache: ort.Tensor[] | undefined, pastLength: number) {
    const cfg = this.options.model;
    const dtype = this.options.weights.dtype;
    const T = tokens.length;
    const S = pastLength + T;
    const bias = this.floats(T * S).fill(MASKED);
    for (let i = 0; i < T; i++) for (let j = 0; j <= pastLength + i; j++) bias[i * S + j] = 0;
    const cos = this.floats(T * cfg.headDim);
    const sin = this.floats(T * cfg.headDim);
    fillRope(
      cfg,
      Array.from({ length: T }, (_, i) => pastLength + i),
      cos,
      sin,
    );
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, T]),
      attention_bias: new ort.Tensor(dtype, bias, [1, T, S]),
      rope_cos: new ort.Tensor(dtype, cos, [1, T, cfg.headDim]),
      rope_sin: new ort.Tensor(dtype, sin, [1, T, cfg.headDim]),
      logits_index: new ort.Tensor('int64', BigInt64Array.of(BigInt(T - 1)), []),
    };
    for (let i = 0; i < cfg.numLayers; i++) {
      const empty = () => new ort.Tensor(dtype, this.floats(0), [1, cfg.numKvHeads, 0, cfg.headDim]);
      feeds[pastKey(i)] = cache ? cache[2 * i] : empty();
      feeds[pastValue(i)] = cache ? cache[2 * i + 1] : empty();
    }
    if (this.options.lora) {
      for (const s of loraTensorSpecs(cfg, this.options.lora.config)) {
        const data = this.options.lora.tensors.get(s.name);
        if (!data) throw new Error(`the adapter has no tensor ${s.name}`);
        feeds[s.name] = new ort.Tensor(dtype, dtype === 'float32' ? data : Float64Array.from(data), s.shape);
      }
    }
    const out = await this.session.run(feeds);
    const next = Array.from({ length: cfg.numLayers }, (_, i) => [
      out[presentKey(i)],
      out[presentValue(i)],
    ]).flat();
    return { logits: Float32Array.from(out.logits.data as Float32Array), cache: next };
  }

  /** Yields new token ids one at a time until a stop token or maxNewTokens. */
  async *generate(prompt: number[], o: SamplingOptions): AsyncGenerator<number> {
    if (prompt.length === 0) throw new Error('generate: the prompt has no tokens');
    const cfg = this.options.model;
    // The graph attends to every earlier token; a windowed model (Mistral) only to slidingWindow of
    // them. Up to the window the two are the same, so generation stays inside it.
    const window = cfg.slidingWindow ?? Infinity;
    if (prompt.length > window) {
      throw new ModelConfigError(
        `the prompt has ${prompt.length} tokens, more than the model's sliding_window (${window}); fedit does not implement windowed attention`,
      );
    }
    const maxLength = Math.min(cfg.maxPositionEmbeddings, window);
    const random = uniformSampler(o.seed ?? 0);
    let { logits, cache } = await this.forward(prompt, undefined, 0);
    let length = prompt.length;
    const decodable = Math.min(this.options.tokenizerVocabSize ?? Infinity, this.options.model.vocabSize);
    for (let n = 0; n < o.maxNewTokens; n++) {
      const token = sampleToken(logits.subarray(0, decodable), o.temperature ?? 0, o.topP ?? 1, random);
      if (o.stopTokens?.includes(token)) return;
      yield token;
      if (n + 1 === o.maxNewTokens || length + 1 > maxLength) return;
      ({ logits, cache } = await this.forward([token], cache, length));
      length++;
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
