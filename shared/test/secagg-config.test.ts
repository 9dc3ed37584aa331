// The secureAggregation section of a federation config: which rules and settings may run secure
// rounds (secureAggregationProblem, also applied by config validation), the fixed-point overflow
// condition, the threshold rule, and the config hash of federations without the section.

import test from 'ava';
import {
  ConfigError,
  configHash,
  secureAggregationProblem,
  secureThreshold,
  validateFederationConfig,
  type FederationConfig,
} from '@fedit/shared';
import { secureConfig } from './helpers/secure-round.ts';

const base = secureConfig({ n: 5, graph: 'secagg+' });
const withAggregation = (aggregation: Partial<FederationConfig['aggregation']>): FederationConfig => ({
  ...base,
  aggregation: { ...base.aggregation, ...aggregation },
});

test('fedit and fedavg-uniform with fixed clipping, FFA-LoRA, FedProx and a server optimizer may run secure rounds', (t) => {
  t.is(secureAggregationProblem(base), undefined);
  const allowed: FederationConfig = {
    ...withAggregation({
      rule: 'fedavg-uniform',
      clipping: { kind: 'fixed', bound: 2 },
      serverOptimizer: { kind: 'adam', lr: 0.1 },
    }),
    training: { ...base.training, freezeLoraA: true, proximalMu: 0.01 },
  };
  t.is(secureAggregationProblem(allowed), undefined);
  t.deepEqual(validateFederationConfig(structuredClone(allowed)), allowed);
});

for (const [edit, why] of [
  [{ rule: 'median' }, /rule median: it takes the median of each coordinate over the individual updates/],
  [{ rule: 'trimmed-mean' }, /rule trimmed-mean/],
  [{ rule: 'krum' }, /rule krum: it scores each individual update/],
  [{ rule: 'product-svd' }, /rule product-svd/],
  [{ clipping: { kind: 'adaptive', multiplier: 2 } }, /adaptive clipping: its bound is the median norm/],
  [{ weightCap: undefined }, /needs aggregation\.weightCap/],
] as const) {
  test(`refused with a sentence naming why: ${JSON.stringify(edit)}`, (t) => {
    const config = withAggregation(edit as Partial<FederationConfig['aggregation']>);
    t.regex(secureAggregationProblem(config) ?? '', why);
    const error = t.throws(() => validateFederationConfig(structuredClone(config)), {
      instanceOf: ConfigError,
    });
    t.is(error!.field, 'secureAggregation');
  });
}

test('SCAFFOLD and a fixed point that can overflow are refused', (t) => {
  t.regex(
    secureAggregationProblem({ ...base, training: { ...base.training, scaffold: true } }) ?? '',
    /SCAFFOLD/,
  );
  // N·ceil(W·R·2^k) = 64 · 50·1·2^20 ≥ 2^31.
  const overflow = { ...base, secureAggregation: { ...base.secureAggregation!, scaleBits: 20 } };
  t.regex(secureAggregationProblem(overflow) ?? '', /can overflow/);
});

test('bad section fields are named', (t) => {
  for (const [field, value] of [
    ['thresholdFraction', 0.5],
    ['degree', 3],
    ['graph', 'ring'],
    ['scaleBits', 31],
  ] as const) {
    const raw = structuredClone(base) as unknown as { secureAggregation: Record<string, unknown> };
    raw.secureAggregation[field] = value;
    const error = t.throws(() => validateFederationConfig(raw), { instanceOf: ConfigError });
    t.is(error!.field, `secureAggregation.${field}`);
  }
});

test('the threshold is the smallest t >= 2 with t / h >= the fraction (no binary64 surprise at 0.6 · 5)', (t) => {
  t.is(secureThreshold(0.6, 5), 3);
  t.is(secureThreshold(0.6, 9), 6);
  t.is(secureThreshold(0.51, 2), 2);
  t.is(secureThreshold(1, 7), 7);
  t.is(secureThreshold(0.7, 10), 7);
});

test('a config without the section hashes as before; with it, differently', (t) => {
  const { secureAggregation: _s, ...plain } = base;
  t.is(configHash(validateFederationConfig(structuredClone(plain))), configHash(plain as FederationConfig));
  t.false('secureAggregation' in validateFederationConfig(structuredClone(plain)));
  t.not(configHash(base), configHash(plain as FederationConfig));
});
