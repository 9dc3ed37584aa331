// The federation config is checked field by field, with errors that name the field.
import test from 'ava';
import { createHash } from 'node:crypto';
import {
  ConfigError,
  configDifferences,
  configHash,
  requireKnownRule,
  validateFederationConfig,
  type FederationConfig,
} from '../src/federation/config.ts';
import { decimalString } from '../src/rounds/canonical.ts';

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
    [
      'participantsPerRound.overSelection',
      0.9,
      /participantsPerRound\.overSelection: must be a number in \[1, 10\]/,
    ],
    [
      'participantsPerRound.quorum',
      1,
      /participantsPerRound\.quorum: must be at least minUpdates \(2\), got 1/,
    ],
    ['participantsPerRound.quorum', 1.5, /participantsPerRound\.quorum/],
    ['limits', undefined, /limits: must be an object/],
    ['training.lr', 'fast', /training\.lr: must be a positive number/],
    ['lora.targets', ['q_proj', ''], /lora\.targets: must be a list of 1 to 64 module names/],
    ['lora.targets', Array(65).fill('q_proj'), /lora\.targets/],
    ['limits.maxUploadBytes', 2 ** 53, /limits\.maxUploadBytes: must be a whole number of bytes/],
    ['limits.maxUploadBytes', 1.5, /limits\.maxUploadBytes: must be a whole number of bytes >= 1/],
    // Beyond setTimeout's 24.8 days is fine (timers.ts waits in steps); beyond 366 days is a typo.
    [
      'roundDeadlineSeconds',
      367 * 86400,
      /roundDeadlineSeconds: must be a positive number of seconds, at most 31622400/,
    ],
    ['roundDeadlineSeconds', 0, /roundDeadlineSeconds: must be a positive number of seconds/],
  ];
  for (const [path, value, message] of cases)
    t.throws(() => validateFederationConfig(withField(path, value)), { message }, path);
  t.throws(() => validateFederationConfig([]), { message: /must be a JSON object/ });
  t.notThrows(() => validateFederationConfig(withField('roundDeadlineSeconds', 30 * 86400)));
});

test('over-selection and quorum are optional: a config without them keeps its hash', (t) => {
  const withThem = validateFederationConfig(
    withField('participantsPerRound', { fraction: 1, minimum: 2, overSelection: 1.3, quorum: 2 }),
  );
  t.like(withThem.participantsPerRound, { overSelection: 1.3, quorum: 2 });
  t.is(
    validateFederationConfig(structuredClone(exampleConfig)).participantsPerRound.overSelection,
    undefined,
  );
  t.not(configHash(withThem), configHash(exampleConfig));
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

test('the config hash is SHA-256 over the canonical JSON with non-integers as decimal strings, as documented', (t) => {
  // Written out by hand, as someone without fedit would build it: keys in byte order, no spaces,
  // lr 3e-4 -> "0.0003", dropout -> "0.05", every integer as a number.
  const text =
    '{"aggregation":{"rule":"fedit"},"baseModel":{"identity":"sha256:' +
    'ab'.repeat(32) +
    '","name":"tiny"},"id":"fed-test","limits":{"maxExampleCount":1000000,"maxUpdateNorm":100,' +
    '"maxUploadBytes":67108864},"lora":{"alpha":16,"dropout":"0.05","rank":8,"targets":["q_proj","v_proj"]},' +
    '"minUpdates":2,"name":"test federation","participantsPerRound":{"fraction":1,"minimum":2},' +
    '"roundDeadlineSeconds":60,"rounds":3,"training":{"batchSize":4,"cutoffLen":128,"localSteps":10,' +
    '"lr":"0.0003","template":"chat","trainOnInputs":false}}';
  const expected = createHash('sha256').update('fedit/federation-config/v2\n').update(text).digest('hex');
  t.is(configHash(exampleConfig), `sha256:${expected}`);
});

test('floats that differ hash differently, and the same float always hashes alike', (t) => {
  const lr = (value: number) =>
    configHash({ ...exampleConfig, training: { ...exampleConfig.training, lr: value } });
  t.is(lr(0.1 + 0.2), lr(0.30000000000000004));
  t.not(lr(0.1 + 0.2), lr(0.3));
  t.not(lr(1e-7), lr(1e-8));
});

test('decimal strings are the shortest round-trip digits, never in exponent notation', (t) => {
  const cases: [number, string][] = [
    [0.0003, '0.0003'],
    [1e-7, '0.0000001'],
    [1.5e-10, '0.00000000015'],
    [0.30000000000000004, '0.30000000000000004'],
    [1e21, '1000000000000000000000'],
    [1.25e22, '12500000000000000000000'],
    [-2.5, '-2.5'],
    [12.75, '12.75'],
  ];
  for (const [value, text] of cases) {
    t.is(decimalString(value), text, String(value));
    t.is(Number(text), value, `${text} reads back as ${value}`);
  }
  t.throws(() => decimalString(Number.NaN), { code: 'ROUND_RECORD_CANONICAL' });
});

test('a participant and the coordinator hold a config to the same bounds: trainOnInputs must be a boolean', (t) => {
  const v = validateFederationConfig(withField('training.trainOnInputs', undefined));
  t.false(v.training.trainOnInputs);
  t.throws(() => validateFederationConfig(withField('training.trainOnInputs', 'yes')), {
    message: /training\.trainOnInputs: must be true or false/,
  });
  t.throws(() => validateFederationConfig(withField('rounds', undefined)), {
    message: /rounds: must be a whole number >= 1/,
  });
});

test('validation keeps only the fields of a federation config, so an unknown field does not change its hash', (t) => {
  const v = validateFederationConfig({ ...structuredClone(exampleConfig), newerField: 1 });
  t.deepEqual(v, exampleConfig);
  t.is(configHash(v), configHash(exampleConfig));
});

test('an unknown field inside a section is dropped too, and a root that is no object is named (root)', (t) => {
  const newer = structuredClone(exampleConfig) as unknown as Record<string, Record<string, unknown>>;
  newer.lora.newerKnob = 3;
  newer.limits.newerLimit = 1;
  t.deepEqual(validateFederationConfig(newer), exampleConfig);
  const error = t.throws(() => validateFederationConfig('text'), { instanceOf: ConfigError });
  t.like(error, { field: '(root)', problem: 'must be a JSON object', code: 'FEDERATION_CONFIG' });
  t.like(
    t.throws(() => validateFederationConfig(withField('lora.rank', 2.5)), { instanceOf: ConfigError }),
    {
      field: 'lora.rank',
      problem: 'must be a whole number >= 1, got 2.5',
      message: 'federation config: lora.rank: must be a whole number >= 1, got 2.5',
    },
  );
});

test('a rule this fedit lacks is a name to a participant and a refusal to the coordinator', (t) => {
  // A participant with an older fedit still parses (and can join) a federation running a newer
  // rule; the coordinator, which must aggregate with it, refuses the config.
  const config = validateFederationConfig(withField('aggregation.rule', 'fedprox-2030'));
  t.is(config.aggregation.rule, 'fedprox-2030');
  t.throws(() => requireKnownRule(config), {
    message: /aggregation\.rule: must be one of the known rules \(fedavg-uniform, fedit, /,
  });
  t.notThrows(() => requireKnownRule(validateFederationConfig(withField('aggregation.rule', 'fedit'))));
});

test('the learning settings are optional: a config without them keeps its hash, one with them is checked field by field', (t) => {
  const withoutThem = validateFederationConfig(structuredClone(exampleConfig));
  t.false('freezeLoraA' in withoutThem.training);
  t.false('scaffold' in withoutThem.training);
  t.false('serverOptimizer' in withoutThem.aggregation);
  const learning = {
    ...exampleConfig,
    training: {
      ...exampleConfig.training,
      freezeLoraA: true,
      proximalMu: 0.01,
      scaffold: true,
      lrSchedule: { kind: 'cosine', finalFraction: 0.1 },
    },
    aggregation: {
      rule: 'fedit',
      weightCap: 40,
      clipping: { kind: 'adaptive', multiplier: 1.5 },
      serverOptimizer: { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.99, tau: 0.001 },
    },
  };
  const parsed = validateFederationConfig(structuredClone(learning));
  t.deepEqual(parsed, learning);
  t.not(configHash(parsed), configHash(withoutThem));
  const bad = (patch: object, field: string) =>
    t.is(
      t.throws(() => validateFederationConfig({ ...learning, ...patch }), { instanceOf: ConfigError }).field,
      field,
    );
  bad(
    { aggregation: { ...learning.aggregation, clipping: { kind: 'adaptive', multiplier: 0 } } },
    'aggregation.clipping.multiplier',
  );
  bad(
    { aggregation: { ...learning.aggregation, clipping: { kind: 'sometimes' } } },
    'aggregation.clipping.kind',
  );
  bad(
    { aggregation: { ...learning.aggregation, serverOptimizer: { kind: 'rmsprop', lr: 1 } } },
    'aggregation.serverOptimizer.kind',
  );
  bad({ aggregation: { ...learning.aggregation, weightCap: 0 } }, 'aggregation.weightCap');
  bad({ training: { ...learning.training, freezeLoraA: 'yes' } }, 'training.freezeLoraA');
  bad({ training: { ...learning.training, proximalMu: -1 } }, 'training.proximalMu');
  bad({ training: { ...learning.training, scaffold: 1 } }, 'training.scaffold');
});
