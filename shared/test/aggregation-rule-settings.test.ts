// The rule config rounds record (rule-settings.ts): derived from the federation config alone with
// every default spelled out and non-integers as decimal strings, read back to the same binary64
// values, each key checked and named when wrong; and a federation config without the learning
// fields records {} so older federations are unchanged.

import test, { type ExecutionContext } from 'ava';
import {
  AggregationError,
  ConfigError,
  requireKnownRule,
  aggregationRule,
  parseRuleSettings,
  ruleConfigOf,
  ruleRefFor,
  validateFederationConfig,
  type AggregationConfig,
  type AggregationErrorCode,
  type FederationConfig,
} from '@fedit/shared';

const BASE: FederationConfig = {
  id: 'fed-rules',
  name: 'rule settings',
  baseModel: { identity: `sha256:${'ab'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q_proj'] },
  training: { localSteps: 30, batchSize: 1, lr: 2e-3, cutoffLen: 32, template: 'chat', trainOnInputs: false },
  rounds: 8,
  participantsPerRound: { fraction: 1, minimum: 3 },
  roundDeadlineSeconds: 60,
  minUpdates: 3,
  aggregation: { rule: 'fedit' },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
};

/** The federation config with `aggregation` (and `training`) fields set, parsed as init parses it. */
function federation(aggregation: object, training: object = {}): FederationConfig {
  return validateFederationConfig({
    ...BASE,
    training: { ...BASE.training, ...training },
    aggregation: { ...BASE.aggregation, ...aggregation },
  });
}

/** The settings fedit's rule reads from a record's config. */
const feditSettings = (config: AggregationConfig) => aggregationRule('fedit').settings(config);

const configError = (text: RegExp) => (err: unknown) =>
  err instanceof AggregationError &&
  err.code === ('AGGREGATION_CONFIG' satisfies AggregationErrorCode) &&
  text.test(err.message);

const refused = (t: ExecutionContext, f: () => unknown, text: RegExp) =>
  t.true(configError(text)(t.throws(f)), `expected AGGREGATION_CONFIG matching ${text}`);

test('a federation config without the learning fields records the rule with {}: FedIT as before', (t) => {
  t.deepEqual(ruleRefFor(BASE), { name: 'fedit', config: {} });
  t.deepEqual(ruleRefFor(federation({ rule: 'fedavg-uniform' }, { freezeLoraA: false })), {
    name: 'fedavg-uniform',
    config: {},
  });
  t.deepEqual(parseRuleSettings('fedit', {}, []), {});
  t.deepEqual(feditSettings({}), {});
});

test('every common setting is spelled out, non-integers as decimal strings, server optimizer defaults filled', (t) => {
  const config = federation(
    {
      weightCap: 40,
      clipping: { kind: 'adaptive', multiplier: 1.5 },
      serverOptimizer: { kind: 'adam', lr: 0.01 },
    },
    { freezeLoraA: true, scaffold: true },
  );
  const ref = ruleRefFor(config);
  t.deepEqual(ref, {
    name: 'fedit',
    config: {
      frozenA: true,
      scaffold: true,
      weightCap: 40,
      clipping: { kind: 'adaptive', multiplier: '1.5' },
      serverOptimizer: { kind: 'adam', lr: '0.01', beta1: '0.9', beta2: '0.99', tau: '0.001' },
    },
  });
  // ... and read back to the binary64 values the config holds.
  t.deepEqual(feditSettings(ref.config), {
    frozenA: true,
    scaffold: true,
    weightCap: 40,
    clipping: { kind: 'adaptive', multiplier: 1.5 },
    serverOptimizer: { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.99, tau: 0.001 },
  });
  // Values the config sets win over the defaults; integers stay numbers (beta1 0, a fixed bound).
  const set = ruleRefFor(
    federation({
      clipping: { kind: 'fixed', bound: 2 },
      serverOptimizer: { kind: 'yogi', lr: 1, beta1: 0, beta2: 0.999, tau: 1e-6 },
    }),
  );
  t.deepEqual(set.config, {
    clipping: { kind: 'fixed', bound: 2 },
    serverOptimizer: { kind: 'yogi', lr: 1, beta1: 0, beta2: '0.999', tau: '0.000001' },
  });
});

test('decimal strings read back to the very binary64 value they were written from', (t) => {
  for (const lr of [0.1, 3e-4, 1e-7, 0.30000000000000004, 2.5e-12, 123.456]) {
    const ref = ruleRefFor(federation({ serverOptimizer: { kind: 'sgd', lr } }));
    const written = (ref.config.serverOptimizer as { lr: string }).lr;
    t.is(typeof written, 'string');
    t.notRegex(written, /e/, 'a plain decimal, never exponent notation');
    t.is(feditSettings(ref.config).serverOptimizer!.lr, lr, written);
  }
});

test("a rule's own settings are recorded for that rule only, with their defaults", (t) => {
  t.deepEqual(ruleRefFor(federation({ rule: 'trimmed-mean' })).config, { trimFraction: '0.2' });
  t.deepEqual(ruleRefFor(federation({ rule: 'trimmed-mean', trimFraction: 0.1 })).config, {
    trimFraction: '0.1',
  });
  t.deepEqual(ruleRefFor(federation({ rule: 'trimmed-mean', trimFraction: 0 })).config, { trimFraction: 0 });
  t.deepEqual(ruleRefFor(federation({ rule: 'krum' })).config, { byzantine: 0, krumSelect: 1 });
  t.deepEqual(ruleRefFor(federation({ rule: 'krum', byzantine: 1, krumSelect: 2 })).config, {
    byzantine: 1,
    krumSelect: 2,
  });
  // product-svd takes the federation's LoRA rank and alpha.
  t.deepEqual(ruleRefFor(federation({ rule: 'product-svd' })).config, { rank: 8, alpha: 16 });
  t.deepEqual(
    ruleRefFor(
      validateFederationConfig({
        ...BASE,
        lora: { ...BASE.lora, alpha: 2.5 },
        aggregation: { rule: 'product-svd' },
      }),
    ).config,
    { rank: 8, alpha: '2.5' },
  );
  // A setting of another rule in the config is not part of this rule's record...
  t.deepEqual(ruleConfigOf(federation({ rule: 'median' }), aggregationRule('median').options), {});
  t.deepEqual(
    ruleConfigOf({ ...BASE, aggregation: { rule: 'fedit', trimFraction: 0.3, krumSelect: 2 } }, []),
    {},
  );
  // ...and a record that names one is refused, naming it and what the rule takes.
  refused(
    t,
    () => feditSettings({ trimFraction: '0.2' }),
    /^rule fedit: unknown setting "trimFraction"; it takes frozenA, scaffold, weightCap, clipping, serverOptimizer, differentialPrivacy$/,
  );
  refused(
    t,
    () => aggregationRule('trimmed-mean').settings({ trimFraction: '0.2', krumSelect: 1, rank: 8 }),
    /unknown setting "krumSelect", "rank"; it takes .*trimFraction$/,
  );
});

test("a rule's own settings are required in a record", (t) => {
  refused(
    t,
    () => aggregationRule('trimmed-mean').settings({}),
    /^rule trimmed-mean: trimFraction is required$/,
  );
  refused(t, () => aggregationRule('krum').settings({ byzantine: 1 }), /^rule krum: krumSelect is required$/);
  refused(
    t,
    () => aggregationRule('product-svd').settings({ rank: 8 }),
    /^rule product-svd: alpha is required$/,
  );
  t.deepEqual(aggregationRule('product-svd').settings({ rank: 8, alpha: '2.5' }), { rank: 8, alpha: 2.5 });
});

test('each value out of range or of the wrong form is refused, naming its key', (t) => {
  const cases: [AggregationConfig, RegExp][] = [
    [{ frozenA: 'yes' }, /frozenA must be true or false/],
    [{ scaffold: 1 }, /scaffold must be true or false/],
    [{ weightCap: 0 }, /weightCap is out of range or not a number: 0/],
    [{ weightCap: '1.5' }, /weightCap is out of range or not a number: "1.5"/],
    [{ clipping: 'adaptive' }, /clipping must be an object/],
    [
      { clipping: { kind: 'quantile', multiplier: 1 } },
      /clipping\.kind must be "fixed" or "adaptive", got "quantile"/,
    ],
    [{ clipping: { kind: 'fixed', bound: 0 } }, /clipping\.bound is out of range or not a number: 0/],
    [{ clipping: { kind: 'adaptive' } }, /clipping\.multiplier is out of range or not a number: undefined/],
    [
      { serverOptimizer: { kind: 'lamb', lr: 1, beta1: 0, beta2: 0, tau: 1 } },
      /serverOptimizer\.kind must be one of sgd, avgm, adam, yogi, adagrad, got "lamb"/,
    ],
    [
      { serverOptimizer: { kind: 'adam', lr: 1, beta1: 1, beta2: 0, tau: 1 } },
      /serverOptimizer\.beta1 is out of range/,
    ],
    [
      { serverOptimizer: { kind: 'adam', lr: 1, beta1: 0, beta2: '-0.5', tau: 1 } },
      /serverOptimizer\.beta2 is out of range/,
    ],
    [
      { serverOptimizer: { kind: 'adam', lr: 1, beta1: 0, beta2: 0, tau: '1e-3' } },
      /serverOptimizer\.tau is out of range or not a number: "1e-3"/,
    ],
    [
      { serverOptimizer: { kind: 'adam', lr: 0, beta1: 0, beta2: 0, tau: 1 } },
      /serverOptimizer\.lr is out of range/,
    ],
    // A record always spells out the defaults: one without them is not what ruleConfigOf writes.
    [
      { serverOptimizer: { kind: 'adam', lr: '0.01' } },
      /serverOptimizer\.beta1 is out of range or not a number: undefined/,
    ],
  ];
  for (const [config, text] of cases) refused(t, () => feditSettings(config), text);
  refused(t, () => feditSettings([] as unknown as AggregationConfig), /its config must be an object/);
  refused(
    t,
    () => aggregationRule('trimmed-mean').settings({ trimFraction: '0.5' }),
    /trimFraction is out of range/,
  );
  refused(
    t,
    () => aggregationRule('krum').settings({ byzantine: -1, krumSelect: 1 }),
    /byzantine is out of range/,
  );
});

test("a federation config naming another rule's setting is refused at init, naming the field", (t) => {
  const err = t.throws(() => requireKnownRule(federation({ rule: 'fedit', trimFraction: 0.1 })), {
    instanceOf: ConfigError,
  });
  t.is(err.field, 'aggregation.trimFraction');
  t.regex(err.message, /rule fedit does not use it \(it belongs to trimmed-mean\)/);
  t.notThrows(() => requireKnownRule(federation({ rule: 'trimmed-mean', trimFraction: 0.1 })));
  t.notThrows(() => requireKnownRule(federation({ rule: 'krum', byzantine: 1, krumSelect: 2 })));
});

test('SCAFFOLD with a rule that re-factors the adapter (product-svd) is refused at init, naming training.scaffold', (t) => {
  const err = t.throws(() => requireKnownRule(federation({ rule: 'product-svd' }, { scaffold: true })), {
    instanceOf: ConfigError,
  });
  t.is(err.field, 'training.scaffold');
  t.regex(err.message, /re-factors the adapter every round/);
  t.notThrows(() => requireKnownRule(federation({ rule: 'fedit' }, { scaffold: true })));
  t.notThrows(() => requireKnownRule(federation({ rule: 'product-svd' })));
});
