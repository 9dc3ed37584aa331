// The federation's differentialPrivacy setting: checked field by field with errors naming the
// field, the combinations that break DP-FedAvg's guarantee refused with the reason, and a config
// without it hashing exactly as before the setting existed.

import test, { type ExecutionContext } from 'ava';
import {
  secureClipRangeFloor,
  ConfigError,
  configHash,
  ruleRefFor,
  validateFederationConfig,
  type FederationConfig,
} from '@fedit/shared';
import { exampleConfig } from './federation-config.test.ts';

const DP = { clipNorm: 0.5, noiseMultiplier: 1.1, delta: 1e-5, epsilonBudget: 8 };
const dpConfig: FederationConfig = {
  ...exampleConfig,
  aggregation: { rule: 'fedavg-uniform' },
  differentialPrivacy: DP,
};

const refused = (t: ExecutionContext, raw: unknown, field: string, message: RegExp) => {
  const error = t.throws(() => validateFederationConfig(raw), { instanceOf: ConfigError });
  t.is(error?.field, field);
  t.regex(error?.message ?? '', message);
};

test('a DP config validates, changes the hash, and derives the rule config every round records', (t) => {
  t.deepEqual(validateFederationConfig(structuredClone(dpConfig)), dpConfig);
  t.not(configHash(dpConfig), configHash({ ...dpConfig, differentialPrivacy: undefined }));
  t.deepEqual(ruleRefFor(dpConfig), {
    name: 'fedavg-uniform',
    config: { differentialPrivacy: { clipNorm: '0.5', noiseMultiplier: '1.1', noise: 'central' } },
  });
});

test('a config without differentialPrivacy hashes as it did before the setting existed', (t) => {
  // federation-config.test.ts pins exampleConfig's hash to a python-computed value; an absent
  // setting stays absent after parsing, so it adds nothing to the hashed bytes.
  const { differentialPrivacy: _absent, ...plain } = dpConfig;
  t.false('differentialPrivacy' in validateFederationConfig(plain));
  t.is(configHash(exampleConfig), configHash(validateFederationConfig(structuredClone(exampleConfig))));
});

test('each field is checked with an error naming it', (t) => {
  const withDp = (dp: object) => ({ ...dpConfig, differentialPrivacy: { ...DP, ...dp } });
  refused(t, withDp({ clipNorm: 0 }), 'differentialPrivacy.clipNorm', /clip bound C/);
  refused(t, withDp({ noiseMultiplier: -1 }), 'differentialPrivacy.noiseMultiplier', /sigma/);
  refused(t, withDp({ delta: 1 }), 'differentialPrivacy.delta', /\(0, 1\)/);
  refused(t, withDp({ epsilonBudget: Number.NaN }), 'differentialPrivacy.epsilonBudget', /epsilon budget/);
  refused(t, withDp({ orders: [1, 2] }), 'differentialPrivacy.orders', /numbers in \(1, 1024\]/);
  refused(t, withDp({ orders: [] }), 'differentialPrivacy.orders', /1 to 1024/);
  refused(t, { ...dpConfig, differentialPrivacy: 'on' }, 'differentialPrivacy', /must be an object/);
});

test('combinations that break the guarantee are refused, saying why', (t) => {
  refused(
    t,
    { ...dpConfig, aggregation: { rule: 'fedit' } },
    'aggregation.rule',
    /must be "fedavg-uniform".*sensitivity is the clip bound C only when each counted update weighs 1/,
  );
  for (const rule of ['median', 'krum', 'trimmed-mean', 'product-svd'])
    refused(t, { ...dpConfig, aggregation: { rule } }, 'aggregation.rule', /robust or product-space rules/);
  refused(
    t,
    { ...dpConfig, aggregation: { rule: 'fedavg-uniform', clipping: { kind: 'fixed', bound: 1 } } },
    'aggregation.clipping',
    /clipped to differentialPrivacy.clipNorm/,
  );
  refused(
    t,
    { ...dpConfig, training: { ...dpConfig.training, scaffold: true } },
    'training.scaffold',
    /unnoised mean/,
  );
});

test('with secure aggregation the clip range must pass the noise shares unclipped (7 standard deviations)', (t) => {
  // C (1 + 7 sigma / sqrt 2) = 0.5 * (1 + 7 * 1.1 / 1.41421...) = 3.222...
  t.is(secureClipRangeFloor(DP).toFixed(4), '3.2224');
  const secure = (clipRange: number) => ({
    ...dpConfig,
    aggregation: { ...dpConfig.aggregation, weightCap: 4 },
    secureAggregation: {
      graph: 'complete',
      thresholdFraction: 0.6,
      clipRange,
      scaleBits: 12,
      maxParticipants: 8,
      phaseSeconds: 10,
    },
  });
  refused(t, secure(1), 'secureAggregation.clipRange', /at least 3\.222 .*noise share/);
  t.notThrows(() => validateFederationConfig(secure(3.25)));
});
