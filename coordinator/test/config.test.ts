// The federation config is checked field by field, with errors that name the field.
import test from 'ava';
import {
  configDifferences,
  configHash,
  validateFederationConfig,
  type FederationConfig,
} from '../src/federation/config.ts';

export const exampleConfig: FederationConfig = {
  id: 'fed-test',
  name: 'test federation',
  baseModel: { identity: `sha256:${'ab'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 8, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'] },
  training: {
    localSteps: 10,
    batchSize: 4,
    lr: 3e-4,
    cutoffLen: 128,
    template: 'chat',
    trainOnInputs: false,
  },
  rounds: 3,
  participantsPerRound: { fraction: 1, minimum: 2 },
  roundDeadlineSeconds: 60,
  minUpdates: 2,
  aggregation: { rule: 'fedit' },
  limits: { maxUpdateNorm: 100, maxUploadBytes: 64 << 20, maxExampleCount: 1_000_000 },
};

test('a complete config validates and hashes independently of key order', (t) => {
  const v = validateFederationConfig(structuredClone(exampleConfig));
  t.deepEqual(v, exampleConfig);
  const reordered = Object.fromEntries(Object.entries(exampleConfig).reverse());
  t.is(configHash(validateFederationConfig(reordered)), configHash(exampleConfig));
  t.not(configHash({ ...exampleConfig, rounds: 4 }), configHash(exampleConfig));
});

/** A copy of the example with the field at `path` set to `value` (undefined deletes it). */
function withField(path: string, value: unknown): unknown {
  const copy = structuredClone(exampleConfig) as unknown as Record<string, Record<string, unknown>>;
  const keys = path.split('.');
  const parent = keys
    .slice(0, -1)
    .reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, copy);
  if (value === undefined) delete parent[keys.at(-1)!];
  else parent[keys.at(-1)!] = value;
  return copy;
}

test('each bad field is named in the error', (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['lora.rank', 0, /lora\.rank: must be a whole number >= 1/],
    ['lora.targets', [], /lora\.targets/],
    ['training.template', 'vicuna', /training\.template/],
    ['baseModel.identity', 'abc', /baseModel\.identity/],
    ['participantsPerRound.fraction', 1.5, /participantsPerRound\.fraction/],
    ['minUpdates', 5, /minUpdates/],
    ['limits', undefined, /limits: must be an object/],
    ['training.lr', 'fast', /training\.lr: must be a positive number/],
    [
      'aggregation.rule',
      'median',
      /aggregation\.rule: must be one of the known rules \(fedavg-uniform, fedit\)/,
    ],
    ['limits.maxUploadBytes', 1.5, /limits\.maxUploadBytes: must be a whole number of bytes >= 1/],
  ];
  for (const [path, value, message] of cases)
    t.throws(() => validateFederationConfig(withField(path, value)), { message }, path);
  t.throws(() => validateFederationConfig([]), { message: /must be a JSON object/ });
});

test('configDifferences names every differing field by its dotted path, and nothing for equal configs', (t) => {
  t.deepEqual(configDifferences(exampleConfig, structuredClone(exampleConfig)), []);
  const changed = structuredClone(exampleConfig);
  changed.limits.maxUpdateNorm += 1;
  changed.lora.targets = ['q_proj'];
  changed.rounds += 1;
  t.deepEqual(configDifferences(changed, exampleConfig), ['limits.maxUpdateNorm', 'lora.targets', 'rounds']);
  const { name: _, ...unnamed } = exampleConfig;
  t.deepEqual(configDifferences(unnamed, exampleConfig), ['name']);
});
