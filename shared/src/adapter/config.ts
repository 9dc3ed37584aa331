// adapter_config.json as Hugging Face PEFT writes it for LoRA, and as fedit writes it so that PEFT,
// vLLM and llama.cpp's converter load fedit's adapters unchanged.
//
// Reading is lenient where PEFT is (unknown keys are ignored, as PEFT >= 0.13 ignores keys written
// by newer versions) and strict where a setting would change what the tensors mean: a setting
// fedit does not implement (DoRA, per-module rank_pattern, bias training, ...) is refused with
// ADAPTER_UNSUPPORTED rather than silently producing a different model.
//
// Writing emits only keys that PEFT has accepted since 0.9 (when use_dora appeared): PEFT before
// 0.13 rejects adapter_config.json keys it does not know with a TypeError, so fedit's own
// annotations live in the safetensors metadata instead (see adapter.ts).

import { AdapterError } from './adapter-error.ts';

export interface AdapterConfig {
  /** LoRA rank, PEFT's `r`. */
  rank: number;
  /** PEFT's `lora_alpha`. */
  alpha: number;
  /** PEFT's `lora_dropout`; a training setting, irrelevant once trained. */
  dropout: number;
  /**
   * PEFT's `target_modules`: module names matched as a suffix of the module path (a set: kept
   * sorted and without duplicates), or one regular expression matched against the whole path, or
   * "all-linear".
   */
  targetModules: readonly string[] | string;
  /** Rank-stabilised LoRA: scale alpha / sqrt(r) instead of alpha / r. */
  useRslora: boolean;
  /** The base model's Hugging Face id or path, PEFT's `base_model_name_or_path`. */
  baseModelNameOrPath: string | null;
  /** The base model's revision on the Hub. */
  revision: string | null;
  taskType: 'CAUSAL_LM' | null;
  /** Layers PEFT adapted when it created the adapter (null: all). */
  layersToTransform: number | number[] | null;
  layersPattern: string | string[] | null;
  /** How PEFT initialised the adapter before training (true, false, "gaussian", "pissa", ...). */
  initLoraWeights: boolean | string;
}

/** What a caller must say about a new adapter; everything else takes PEFT's default. */
export type AdapterConfigInit = Pick<AdapterConfig, 'rank' | 'alpha' | 'targetModules'> &
  Partial<AdapterConfig>;

/** The factor PEFT multiplies B·A by: alpha / r, or alpha / sqrt(r) with rank-stabilised LoRA. */
export function adapterScale(config: Pick<AdapterConfig, 'rank' | 'alpha' | 'useRslora'>): number {
  return config.useRslora ? config.alpha / Math.sqrt(config.rank) : config.alpha / config.rank;
}

/** Fills PEFT's defaults into `init` and validates the result; `source` labels error messages. */
export function makeAdapterConfig(init: AdapterConfigInit, source = 'adapter config'): AdapterConfig {
  const targets: unknown = init.targetModules;
  if (
    typeof targets !== 'string' &&
    !(Array.isArray(targets) && targets.every((t) => typeof t === 'string'))
  ) {
    throw configError(
      source,
      `target_modules must be a list of module names or one regular expression, got ${JSON.stringify(targets)}`,
    );
  }
  // A field given as undefined takes its default too, as an omitted keyword argument would in PEFT.
  const or = <K extends keyof AdapterConfig>(key: K, fallback: AdapterConfig[K]): AdapterConfig[K] =>
    init[key] === undefined ? fallback : (init[key] as AdapterConfig[K]);
  const config: AdapterConfig = {
    rank: init.rank,
    alpha: init.alpha,
    dropout: or('dropout', 0),
    targetModules: typeof targets === 'string' ? targets : canonicalModuleSet(targets),
    useRslora: or('useRslora', false),
    baseModelNameOrPath: or('baseModelNameOrPath', null),
    revision: or('revision', null),
    taskType: or('taskType', 'CAUSAL_LM'),
    layersToTransform: or('layersToTransform', null),
    layersPattern: or('layersPattern', null),
    initLoraWeights: or('initLoraWeights', true),
  };
  if (!Number.isSafeInteger(config.rank) || config.rank <= 0) {
    throw configError(source, `r must be a positive integer, got ${JSON.stringify(config.rank)}`);
  }
  if (typeof config.alpha !== 'number' || !Number.isFinite(config.alpha) || config.alpha <= 0) {
    throw configError(source, `lora_alpha must be a positive number, got ${JSON.stringify(config.alpha)}`);
  }
  if (typeof config.dropout !== 'number' || !(config.dropout >= 0 && config.dropout < 1)) {
    throw configError(source, `lora_dropout must be in [0, 1), got ${JSON.stringify(config.dropout)}`);
  }
  const modules = config.targetModules;
  if (typeof modules === 'string' ? modules === '' : modules.length === 0) {
    throw configError(source, 'target_modules names no module; list the modules the adapter adapts');
  }
  if (typeof modules !== 'string' && modules.includes('')) {
    throw configError(source, 'target_modules contains an empty module name');
  }
  return config;
}

/**
 * Parses adapter_config.json (its text, or the value JSON.parse made of it) exactly as PEFT writes
 * it for LoRA; `source` names the file in error messages.
 */
export function parseAdapterConfig(json: unknown, source = 'adapter_config.json'): AdapterConfig {
  let raw = json;
  if (typeof json === 'string') {
    try {
      raw = JSON.parse(json);
    } catch (err) {
      throw configError(source, `not valid JSON (${(err as Error).message})`);
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw configError(source, 'expected a JSON object');
  }
  const r = raw as Record<string, unknown>;

  if (r.peft_type === undefined || r.peft_type === null) {
    throw configError(source, 'has no "peft_type"; is this a PEFT adapter_config.json?');
  }
  if (r.peft_type !== 'LORA') {
    throw unsupported(
      source,
      `peft_type ${JSON.stringify(r.peft_type)} is not supported; fedit reads LoRA adapters (peft_type "LORA")`,
    );
  }
  for (const key of ['r', 'lora_alpha', 'target_modules'] as const) {
    if (r[key] === undefined || r[key] === null) throw configError(source, `has no "${key}"`);
  }
  refuseUnsupported(r, source);

  const taskType = r.task_type ?? null;
  if (taskType !== null && taskType !== 'CAUSAL_LM') {
    throw unsupported(
      source,
      `task_type ${JSON.stringify(taskType)} is not supported; fedit handles causal language models ("CAUSAL_LM")`,
    );
  }
  return makeAdapterConfig(
    {
      rank: r.r as number,
      alpha: r.lora_alpha as number,
      dropout: (r.lora_dropout ?? 0) as number,
      targetModules: r.target_modules as string[] | string,
      useRslora: booleanField(r, 'use_rslora', false, source),
      baseModelNameOrPath: nullableString(r, 'base_model_name_or_path', source),
      revision: nullableString(r, 'revision', source),
      taskType,
      layersToTransform: layersToTransform(r.layers_to_transform, source),
      layersPattern: layersPattern(r.layers_pattern, source),
      initLoraWeights:
        typeof r.init_lora_weights === 'string'
          ? r.init_lora_weights
          : booleanField(r, 'init_lora_weights', true, source),
    },
    source,
  );
}

/** The adapter_config.json object fedit writes: PEFT's LoRA keys, sorted as PEFT sorts them. */
export function toPeftAdapterConfig(config: AdapterConfig): Record<string, unknown> {
  const peft: Record<string, unknown> = {
    alpha_pattern: {},
    base_model_name_or_path: config.baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: config.initLoraWeights,
    layers_pattern: config.layersPattern,
    layers_to_transform: config.layersToTransform,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: config.rank,
    rank_pattern: {},
    revision: config.revision,
    target_modules:
      typeof config.targetModules === 'string' ? config.targetModules : [...config.targetModules],
    task_type: config.taskType,
    use_dora: false,
    use_rslora: config.useRslora,
  };
  return peft;
}

/**
 * Whether PEFT would adapt the module at `modulePath` (e.g. "model.layers.0.self_attn.q_proj")
 * under `targetModules`: a listed name equal to the path or to its last dotted components, a
 * regular expression matching the whole path, or "all-linear" (any module).
 */
export function targetsModule(targetModules: AdapterConfig['targetModules'], modulePath: string): boolean {
  if (typeof targetModules !== 'string') {
    return targetModules.some((t) => modulePath === t || modulePath.endsWith(`.${t}`));
  }
  if (targetModules === 'all-linear') return true;
  let pattern: RegExp;
  try {
    pattern = new RegExp(`^(?:${targetModules})$`);
  } catch {
    // A Python regular expression JavaScript cannot compile: fedit cannot judge it, PEFT will.
    return true;
  }
  return pattern.test(modulePath);
}

// Settings that change what the tensors mean or which tensors exist. Each is accepted at its
// PEFT default (or absent) and refused otherwise.
const MUST_BE_OFF: ReadonlyArray<[key: string, off: (v: unknown) => boolean, what: string]> = [
  ['use_dora', isFalsy, 'DoRA (use_dora) adds a magnitude vector per module'],
  ['bias', (v) => v === undefined || v === null || v === 'none', 'training biases (bias other than "none")'],
  ['lora_bias', isFalsy, 'a bias on lora_B (lora_bias)'],
  ['fan_in_fan_out', isFalsy, 'fan_in_fan_out (Conv1D weights stored transposed)'],
  ['modules_to_save', isEmpty, 'fully trained modules (modules_to_save)'],
  ['rank_pattern', isEmpty, 'per-module ranks (rank_pattern)'],
  ['alpha_pattern', isEmpty, 'per-module alphas (alpha_pattern)'],
  ['layer_replication', isEmpty, 'layer_replication'],
  ['trainable_token_indices', isEmpty, 'trained token embeddings (trainable_token_indices)'],
  ['target_parameters', isEmpty, 'LoRA on parameters (target_parameters)'],
  ['use_qalora', isFalsy, 'QA-LoRA (use_qalora)'],
];

function refuseUnsupported(r: Record<string, unknown>, source: string): void {
  for (const [key, off, what] of MUST_BE_OFF) {
    if (!off(r[key])) {
      throw unsupported(
        source,
        `"${key}": ${JSON.stringify(r[key])} is not supported; fedit handles plain LoRA, without ${what}`,
      );
    }
  }
}

function isFalsy(v: unknown): boolean {
  return v === undefined || v === null || v === false;
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v).length === 0;
}

function booleanField(r: Record<string, unknown>, key: string, fallback: boolean, source: string): boolean {
  const v = r[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean')
    throw configError(source, `"${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function nullableString(r: Record<string, unknown>, key: string, source: string): string | null {
  const v = r[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string')
    throw configError(source, `"${key}" must be a string or null, got ${JSON.stringify(v)}`);
  return v;
}

function layersToTransform(v: unknown, source: string): number | number[] | null {
  if (v === undefined || v === null) return null;
  const isLayer = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  if (isLayer(v)) return v as number;
  if (Array.isArray(v) && v.every(isLayer)) return [...(v as number[])];
  throw configError(
    source,
    `"layers_to_transform" must be a layer index, a list of them or null, got ${JSON.stringify(v)}`,
  );
}

function layersPattern(v: unknown, source: string): string | string[] | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return [...(v as string[])];
  throw configError(
    source,
    `"layers_pattern" must be a string, a list of strings or null, got ${JSON.stringify(v)}`,
  );
}

/** PEFT holds target_modules as a Python set and writes it in arbitrary order: sort and dedupe. */
function canonicalModuleSet(modules: readonly string[]): string[] {
  return [...new Set(modules)].sort();
}

function configError(source: string, message: string): AdapterError {
  return new AdapterError('ADAPTER_CONFIG', `${source}: ${message}`);
}

function unsupported(source: string, message: string): AdapterError {
  return new AdapterError('ADAPTER_UNSUPPORTED', `${source}: ${message}`);
}
