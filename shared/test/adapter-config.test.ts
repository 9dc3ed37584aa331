// adapter_config.json as Hugging Face PEFT writes it, and as fedit writes it for PEFT to read.

import test from 'ava';
import {
  AdapterError,
  type AdapterErrorCode,
  adapterScale,
  makeAdapterConfig,
  parseAdapterConfig,
  targetsModule,
  toPeftAdapterConfig,
} from '@fedit/shared';

// Every key LoraConfig.save_pretrained writes in PEFT 0.13 (json.dumps(..., indent=2, sort_keys=True)),
// target_modules being a Python set, so in no particular order.
const PEFT_0_13 = `{
  "alpha_pattern": {},
  "auto_mapping": null,
  "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M",
  "bias": "none",
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 16,
  "lora_dropout": 0.05,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "r": 8,
  "rank_pattern": {},
  "revision": null,
  "target_modules": [
    "v_proj",
    "q_proj",
    "o_proj",
    "k_proj"
  ],
  "task_type": "CAUSAL_LM",
  "use_dora": false,
  "use_rslora": false
}`;

function peft(overrides: Record<string, unknown>): Record<string, unknown> {
  return { ...(JSON.parse(PEFT_0_13) as Record<string, unknown>), ...overrides };
}

test('parses adapter_config.json exactly as PEFT 0.13 writes it', (t) => {
  const config = parseAdapterConfig(PEFT_0_13);
  t.deepEqual(config, {
    rank: 8,
    alpha: 16,
    dropout: 0.05,
    targetModules: ['k_proj', 'o_proj', 'q_proj', 'v_proj'],
    useRslora: false,
    baseModelNameOrPath: 'HuggingFaceTB/SmolLM2-135M',
    revision: null,
    taskType: 'CAUSAL_LM',
    layersToTransform: null,
    layersPattern: null,
    initLoraWeights: true,
  });
  t.is(adapterScale(config), 2);
});

test('target_modules is a set: any order and duplicates give the same config', (t) => {
  const a = parseAdapterConfig(peft({ target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] }));
  const b = parseAdapterConfig(peft({ target_modules: ['o_proj', 'v_proj', 'q_proj', 'k_proj', 'q_proj'] }));
  t.deepEqual(a, b);
  t.deepEqual(a.targetModules, ['k_proj', 'o_proj', 'q_proj', 'v_proj']);
});

test('rank-stabilised LoRA scales by alpha / sqrt(r)', (t) => {
  const config = parseAdapterConfig(peft({ use_rslora: true, r: 16, lora_alpha: 8 }));
  t.true(config.useRslora);
  t.is(adapterScale(config), 2);
  t.is(adapterScale({ ...config, useRslora: false }), 0.5);
});

test('keys written by newer PEFT versions are ignored, as PEFT >= 0.13 ignores them', (t) => {
  const config = parseAdapterConfig(
    peft({
      eva_config: null,
      corda_config: null,
      exclude_modules: null,
      lora_bias: false,
      trainable_token_indices: null,
      use_qalora: false,
      qalora_group_size: 16,
      target_parameters: null,
    }),
  );
  t.is(config.rank, 8);
});

test('accepts the other forms PEFT allows: regex target_modules, layer lists, string init, null task type', (t) => {
  const config = parseAdapterConfig(
    peft({
      target_modules: '.*\\.(q_proj|v_proj)',
      layers_to_transform: [0, 2],
      layers_pattern: 'layers',
      init_lora_weights: 'gaussian',
      task_type: null,
      lora_dropout: undefined,
      revision: 'main',
    }),
  );
  t.is(config.targetModules, '.*\\.(q_proj|v_proj)');
  t.deepEqual(config.layersToTransform, [0, 2]);
  t.is(config.layersPattern, 'layers');
  t.is(config.initLoraWeights, 'gaussian');
  t.is(config.taskType, null);
  t.is(config.dropout, 0);
  t.is(config.revision, 'main');
});

test('what fedit writes has PEFT keys and values, sorted, and parses back to the same config', (t) => {
  const config = makeAdapterConfig({
    rank: 4,
    alpha: 8,
    targetModules: ['v_proj', 'q_proj'],
    baseModelNameOrPath: 'HuggingFaceTB/SmolLM2-135M',
  });
  const written = toPeftAdapterConfig(config);
  t.deepEqual(written, {
    alpha_pattern: {},
    base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M',
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: 8,
    lora_dropout: 0,
    modules_to_save: null,
    peft_type: 'LORA',
    r: 4,
    rank_pattern: {},
    revision: null,
    target_modules: ['q_proj', 'v_proj'],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  });
  const keys = Object.keys(written);
  t.deepEqual(keys, [...keys].sort(), 'sorted as PEFT sorts them');
  t.deepEqual(parseAdapterConfig(JSON.stringify(written)), config);
});

test('target_modules matches as PEFT does: by trailing path components, by whole-path regex', (t) => {
  const path = 'model.layers.3.self_attn.q_proj';
  t.true(targetsModule(['q_proj'], path));
  t.true(targetsModule(['self_attn.q_proj'], path));
  t.true(targetsModule([path], path));
  t.false(targetsModule(['proj'], path), 'a name must match whole components');
  t.false(targetsModule(['v_proj'], path));
  t.true(targetsModule('.*\\.(q|v)_proj', path));
  t.false(targetsModule('(q|v)_proj', path), 'a regex must match the whole path');
  t.true(targetsModule('all-linear', path));
});

const rejects: [string, unknown, AdapterErrorCode, RegExp][] = [
  ['text that is not JSON', '{"r": 8,', 'ADAPTER_CONFIG', /not valid JSON/],
  ['a JSON array', '[]', 'ADAPTER_CONFIG', /expected a JSON object/],
  ['no peft_type', peft({ peft_type: undefined }), 'ADAPTER_CONFIG', /no "peft_type"/],
  ['another PEFT method', peft({ peft_type: 'IA3' }), 'ADAPTER_UNSUPPORTED', /peft_type "IA3".*LoRA/],
  ['no r', peft({ r: undefined }), 'ADAPTER_CONFIG', /no "r"/],
  ['r zero', peft({ r: 0 }), 'ADAPTER_CONFIG', /r must be a positive integer, got 0/],
  ['r fractional', peft({ r: 1.5 }), 'ADAPTER_CONFIG', /r must be a positive integer/],
  ['r a string', peft({ r: '8' }), 'ADAPTER_CONFIG', /r must be a positive integer, got "8"/],
  ['alpha zero', peft({ lora_alpha: 0 }), 'ADAPTER_CONFIG', /lora_alpha must be a positive number/],
  ['alpha negative', peft({ lora_alpha: -16 }), 'ADAPTER_CONFIG', /lora_alpha must be a positive number/],
  ['alpha a string', peft({ lora_alpha: '16' }), 'ADAPTER_CONFIG', /lora_alpha/],
  ['dropout 1', peft({ lora_dropout: 1 }), 'ADAPTER_CONFIG', /lora_dropout must be in \[0, 1\)/],
  ['no targets', peft({ target_modules: [] }), 'ADAPTER_CONFIG', /target_modules names no module/],
  ['null targets', peft({ target_modules: null }), 'ADAPTER_CONFIG', /no "target_modules"/],
  ['numeric targets', peft({ target_modules: [1] }), 'ADAPTER_CONFIG', /target_modules must be/],
  ['DoRA', peft({ use_dora: true }), 'ADAPTER_UNSUPPORTED', /use_dora.*DoRA/],
  ['per-module ranks', peft({ rank_pattern: { q_proj: 4 } }), 'ADAPTER_UNSUPPORTED', /rank_pattern/],
  ['per-module alphas', peft({ alpha_pattern: { q_proj: 4 } }), 'ADAPTER_UNSUPPORTED', /alpha_pattern/],
  ['trained biases', peft({ bias: 'all' }), 'ADAPTER_UNSUPPORTED', /"bias": "all"/],
  ['modules to save', peft({ modules_to_save: ['lm_head'] }), 'ADAPTER_UNSUPPORTED', /modules_to_save/],
  ['transposed weights', peft({ fan_in_fan_out: true }), 'ADAPTER_UNSUPPORTED', /fan_in_fan_out/],
  ['a lora_B bias', peft({ lora_bias: true }), 'ADAPTER_UNSUPPORTED', /lora_bias/],
  ['classification', peft({ task_type: 'SEQ_CLS' }), 'ADAPTER_UNSUPPORTED', /task_type "SEQ_CLS"/],
  [
    'rslora not a boolean',
    peft({ use_rslora: 'yes' }),
    'ADAPTER_CONFIG',
    /"use_rslora" must be true or false/,
  ],
  ['bad layers', peft({ layers_to_transform: ['0'] }), 'ADAPTER_CONFIG', /layers_to_transform/],
];

for (const [what, json, code, message] of rejects) {
  test(`rejects an adapter_config.json with ${what}`, (t) => {
    const err = t.throws(() => parseAdapterConfig(json, '/a/adapter_config.json'), {
      instanceOf: AdapterError,
    });
    t.is(err?.code, code);
    t.regex(err?.message ?? '', /^\/a\/adapter_config\.json: /);
    t.regex(err?.message ?? '', message);
  });
}
