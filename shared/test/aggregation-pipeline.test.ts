// The round pipeline (aggregate.ts): frozen A, weight cap, clipping, the rule's combine and the
// server step, in that order. Each step is checked against arithmetic written here from the file
// headers (weighted-mean.ts, clipping.ts, norm.ts), not against the implementation: an empty rule
// config is the FedIT weighted mean of earlier versions bit for bit, a cap and a bound do what
// they say, an update under the bound passes untouched, and every rule runs with a server
// optimizer whose state chains from round to round. Errors name the participant.

import test, { type ExecutionContext } from 'ava';
import {
  AggregationError,
  aggregateContributions,
  aggregateRound,
  aggregationRule,
  compareParticipantIds,
  serverStep,
  WeightedMeanAccumulator,
  type AggregationConfig,
  type AggregationErrorCode,
  type Contribution,
  type TensorValues,
  type WeightedUpdate,
} from '@fedit/shared';
import { A_Q, B_D, B_Q, SCHEMA, randomF32, update } from './aggregation/lora-fixtures.ts';

const GLOBAL = update(4, 1000);
const RANK_4 = { rank: 4, alpha: 8 };

/** An update: the global adapter plus a seeded step of size about `scale` per value. */
function step(seed: number, scale = 0.01): Map<string, Float32Array> {
  return new Map(
    [...GLOBAL].map(([name, g], k) => {
      const d = randomF32(g.length, seed * 17 + k, scale);
      return [name, g.map((v, i) => v + d[i])];
    }),
  );
}

const contribution = (participant: string, exampleCount: number, values: TensorValues): Contribution => ({
  participant,
  exampleCount,
  update: values,
});

/** Three participants, listed out of canonical order. */
const THREE = [
  contribution('p-carol', 40, step(3)),
  contribution('p-alice', 13, step(1)),
  contribution('p-bob', 7, step(2)),
];

const bits = (values: Float32Array) => [...new Uint32Array(Float32Array.from(values).buffer)];
const adapterBits = (adapter: ReadonlyMap<string, Float32Array>) =>
  Object.fromEntries([...adapter].map(([name, v]) => [name, bits(v)]));

const canonical = (contributions: readonly Contribution[]) =>
  [...contributions].sort((a, b) => compareParticipantIds(a.participant, b.participant));
const valuesOf = (c: Contribution) => (typeof c.update === 'function' ? c.update() : c.update);

/** weighted-mean.ts's header: S += w * x in binary64, in the order given; target = S / W. */
function weightedMean(updates: { weight: number; values: ReadonlyMap<string, ArrayLike<number>> }[]) {
  const target = new Map<string, Float64Array>();
  const total = updates.reduce((sum, u) => sum + u.weight, 0);
  for (const name of SCHEMA.keys()) {
    const sums = new Float64Array(updates[0].values.get(name)!.length);
    for (const u of updates) {
      const x = u.values.get(name)!;
      for (let i = 0; i < sums.length; i++) sums[i] = sums[i] + u.weight * x[i];
    }
    target.set(
      name,
      sums.map((s) => s / total),
    );
  }
  return target;
}

const toF32 = (target: ReadonlyMap<string, Float64Array>) =>
  new Map([...target].map(([name, v]) => [name, Float32Array.from(v)]));

/** norm.ts's header: sqrt of the binary64 sum of squared differences, tensors in UTF-8 name order. */
function norm(values: TensorValues, global: TensorValues): number {
  let squares = 0;
  for (const name of [...values.keys()].sort(compareParticipantIds)) {
    const x = values.get(name)!;
    const g = global.get(name)!;
    for (let i = 0; i < x.length; i++) squares += (x[i] - g[i]) * (x[i] - g[i]);
  }
  return Math.sqrt(squares);
}

/** clipping.ts's header: g + scale * (x - g) in binary64, the update itself when scale is 1. */
function clip(values: TensorValues, global: TensorValues, scale: number) {
  if (scale === 1) return values;
  return new Map(
    [...values].map(([name, x]) => {
      const g = global.get(name)!;
      return [name, Float64Array.from(x, (xi, i) => g[i] + scale * (xi - g[i]))];
    }),
  );
}

const failsWith = (t: ExecutionContext, code: AggregationErrorCode, text: RegExp) => (f: () => unknown) => {
  const err = t.throws(f);
  t.true(err instanceof AggregationError && err.code === code, `${err?.message}: expected ${code}`);
  t.regex(err!.message, text);
};

test('an empty rule config is the FedIT weighted mean of earlier versions, bit for bit', (t) => {
  const ordered = canonical(THREE);
  const expected = toF32(weightedMean(ordered.map((c) => ({ weight: c.exampleCount, values: valuesOf(c) }))));
  const result = aggregateRound({ rule: 'fedit', config: {}, schema: SCHEMA, contributions: THREE });
  t.deepEqual(adapterBits(result.adapter), adapterBits(expected));
  t.is(result.serverState, undefined);
  t.is(result.clipBound, undefined);
  // The accumulator earlier versions aggregated with, fed in canonical order, agrees...
  const accumulator = new WeightedMeanAccumulator(SCHEMA, 'example-count');
  for (const c of ordered) accumulator.add(valuesOf(c), c.exampleCount);
  t.deepEqual(adapterBits(result.adapter), adapterBits(accumulator.result()));
  // ...and the global adapter, given or not, changes nothing without settings that use it.
  const withGlobal = aggregateContributions('fedit', {}, SCHEMA, THREE, GLOBAL);
  t.deepEqual(adapterBits(withGlobal), adapterBits(expected));
  // fedavg-uniform: every weight 1.
  const uniform = aggregateContributions('fedavg-uniform', {}, SCHEMA, THREE);
  t.deepEqual(
    adapterBits(uniform),
    adapterBits(toF32(weightedMean(ordered.map((c) => ({ weight: 1, values: valuesOf(c) }))))),
  );
});

test('weightCap: an example count counts at most the cap, so a claim of 10^7 examples weighs as much as the cap', (t) => {
  const claims = [
    contribution('p-alice', 5, step(1)),
    contribution('p-bob', 12, step(2)),
    contribution('p-carol', 1e7, step(3)),
  ];
  const capped = aggregateContributions('fedit', { weightCap: 12 }, SCHEMA, claims);
  const expected = toF32(
    weightedMean(claims.map((c) => ({ weight: Math.min(c.exampleCount, 12), values: valuesOf(c) }))),
  );
  t.deepEqual(adapterBits(capped), adapterBits(expected));
  // Without the cap the claim takes the average over: the result is p-carol's update to ~1e-6.
  const uncapped = aggregateContributions('fedit', {}, SCHEMA, claims);
  const carol = valuesOf(claims[2]).get(B_Q)!;
  t.true(uncapped.get(B_Q)!.every((v, i) => Math.abs(v - carol[i]) < 1e-6));
  t.false(capped.get(B_Q)!.every((v, i) => Math.abs(v - carol[i]) < 1e-4));
  // A cap above every count changes no bit.
  t.deepEqual(
    adapterBits(aggregateContributions('fedit', { weightCap: 41 }, SCHEMA, THREE)),
    adapterBits(aggregateContributions('fedit', {}, SCHEMA, THREE)),
  );
});

test('fixed clipping: an update above the bound is scaled to it, one below it passes bit for bit', (t) => {
  const small = step(1, 0.001);
  const large = step(2, 0.1);
  const bound = (norm(small, GLOBAL) + norm(large, GLOBAL)) / 2;
  const config = { clipping: { kind: 'fixed', bound: bound.toString() } };
  t.is(Number(bound.toString()), bound);
  // One update under the bound: the mean of one update is that update, every bit.
  const alone = aggregateRound({
    rule: 'fedit',
    config,
    schema: SCHEMA,
    global: GLOBAL,
    contributions: [contribution('p-a', 3, small)],
  });
  t.deepEqual(adapterBits(alone.adapter), adapterBits(small));
  t.is(alone.clipBound, bound);
  // One above: g + (bound / norm) * (x - g), whose norm is the bound.
  const scale = bound / norm(large, GLOBAL);
  t.true(scale < 1);
  const clipped = aggregateRound({
    rule: 'fedit',
    config,
    schema: SCHEMA,
    global: GLOBAL,
    contributions: [contribution('p-b', 3, large)],
  });
  const expected = toF32(clip(large, GLOBAL, scale) as Map<string, Float64Array>);
  t.deepEqual(adapterBits(clipped.adapter), adapterBits(expected));
  t.true(Math.abs(norm(clipped.adapter, GLOBAL) - bound) < 1e-6 * bound);
});

test('adaptive clipping: the bound is the multiplier times the median norm, and a x1000 update is brought down to it', (t) => {
  const honest = [contribution('p-alice', 10, step(1)), contribution('p-bob', 10, step(2))];
  const g = GLOBAL;
  const poisoned = new Map(
    [...step(3)].map(([name, x]) => [name, x.map((v, i) => g.get(name)![i] + 1000 * (v - g.get(name)![i]))]),
  );
  const contributions = [...honest, contribution('p-carol', 10, poisoned)];
  const norms = contributions.map((c) => norm(valuesOf(c), GLOBAL));
  const sorted = [...norms].sort((a, b) => a - b);
  const bound = 1.5 * sorted[1];
  const result = aggregateRound({
    rule: 'fedit',
    config: { clipping: { kind: 'adaptive', multiplier: '1.5' } },
    schema: SCHEMA,
    global: GLOBAL,
    contributions,
  });
  t.is(result.clipBound, bound);
  const scales = norms.map((n) => Math.min(1, bound / n));
  t.deepEqual(scales.slice(0, 2), [1, 1], 'the honest updates are under the bound');
  const expected = toF32(
    weightedMean(contributions.map((c, k) => ({ weight: 10, values: clip(valuesOf(c), GLOBAL, scales[k]) }))),
  );
  t.deepEqual(adapterBits(result.adapter), adapterBits(expected));
  // The round moved about as far as an honest update, not 1000 times as far.
  t.true(norm(result.adapter, GLOBAL) < 2 * Math.max(norms[0], norms[1]));
});

test('frozenA: an update whose lora_A equals the global one is taken; one whose lora_A moved by one ulp is refused, naming the participant', (t) => {
  const trainedB = (seed: number) =>
    new Map(
      [...step(seed)].map(([name, x]) => [name, name.includes('.lora_A.') ? GLOBAL.get(name)!.slice() : x]),
    );
  const config = { frozenA: true };
  const ok = aggregateContributions(
    'fedit',
    config,
    SCHEMA,
    [contribution('p-a', 5, trainedB(1)), contribution('p-b', 9, trainedB(2))],
    GLOBAL,
  );
  t.deepEqual(
    bits(ok.get(A_Q)!),
    bits(GLOBAL.get(A_Q)!),
    'the mean of equal A factors is that A, bit for bit',
  );
  t.notDeepEqual(bits(ok.get(B_Q)!), bits(GLOBAL.get(B_Q)!));
  const moved = trainedB(2);
  const a = moved.get(A_Q)!;
  a[3] = Math.fround(a[3] * (1 + 2 ** -23));
  failsWith(
    t,
    'AGGREGATION_FROZEN',
    /^participant p-b: tensor .*q_proj\.lora_A\.weight differs from the global adapter at flat index 3; this federation freezes every lora_A \(FFA-LoRA\)$/,
  )(() =>
    aggregateContributions(
      'fedit',
      config,
      SCHEMA,
      [contribution('p-a', 5, trainedB(1)), contribution('p-b', 9, moved)],
      GLOBAL,
    ),
  );
  // Without frozenA the same update is an ordinary one.
  t.notThrows(() => aggregateContributions('fedit', {}, SCHEMA, [contribution('p-b', 9, moved)], GLOBAL));
});

test("settings that use the round's global adapter refuse to run without it", (t) => {
  const configs: AggregationConfig[] = [
    { frozenA: true },
    { clipping: { kind: 'adaptive', multiplier: 2 } },
    { serverOptimizer: { kind: 'sgd', lr: 1, beta1: '0.9', beta2: '0.99', tau: '0.001' } },
  ];
  for (const config of configs)
    failsWith(
      t,
      'AGGREGATION_CONFIG',
      /^rule fedit: its settings need the round's global adapter$/,
    )(() => aggregateRound({ rule: 'fedit', config, schema: SCHEMA, contributions: THREE }));
  t.notThrows(() =>
    aggregateRound({ rule: 'fedit', config: { weightCap: 10 }, schema: SCHEMA, contributions: THREE }),
  );
});

const ADAM = { kind: 'adam', lr: '0.5', beta1: '0.9', beta2: '0.99', tau: '0.001' };
const RULES: [string, AggregationConfig][] = [
  ['fedit', {}],
  ['fedavg-uniform', {}],
  ['median', {}],
  ['trimmed-mean', { trimFraction: '0.2' }],
  ['krum', { byzantine: 1, krumSelect: 2 }],
  ['product-svd', RANK_4],
];
const FIVE = ['p-erin', 'p-alice', 'p-dave', 'p-bob', 'p-carol'].map((p, k) =>
  contribution(p, 5 + 3 * k, step(k + 1)),
);

for (const [rule, ruleConfig] of RULES) {
  test(`${rule} with a server optimizer: the rule's target, then the FedOpt step, its state chained over two rounds`, (t) => {
    const config = { ...ruleConfig, serverOptimizer: ADAM, weightCap: 14 };
    const settings = aggregationRule(rule).settings(config);
    let global: TensorValues = GLOBAL;
    let state: TensorValues | undefined;
    for (let round = 1; round <= 2; round++) {
      const contributions =
        round === 1 ? FIVE : FIVE.map((c, k) => contribution(c.participant, c.exampleCount, step(10 + k)));
      const weighted: WeightedUpdate[] = canonical(contributions).map((c) => ({
        participant: c.participant,
        weight: Math.min(c.exampleCount, 14),
        values: valuesOf(c),
      }));
      const target = aggregationRule(rule).combine(weighted, SCHEMA, settings);
      const expected = serverStep(settings.serverOptimizer!, SCHEMA, global, target, state);
      const result = aggregateRound({
        rule,
        config,
        schema: SCHEMA,
        contributions,
        global,
        serverState: state,
      });
      t.deepEqual(adapterBits(result.adapter), adapterBits(expected.adapter), `round ${round}: the adapter`);
      t.deepEqual(
        adapterBits(result.serverState!),
        adapterBits(expected.state!),
        `round ${round}: the state`,
      );
      t.is(result.serverState!.size, 2 * SCHEMA.size);
      // The step is taken: the adapter is not the rule's target itself.
      t.notDeepEqual(adapterBits(result.adapter), adapterBits(toF32(target)));
      global = result.adapter;
      state = result.serverState;
    }
  });
}

test("median's target through the pipeline is the middle value of the three updates, element by element", (t) => {
  const result = aggregateContributions('median', {}, SCHEMA, THREE);
  const values = THREE.map(valuesOf);
  for (const [name, out] of result) {
    const expected = Float32Array.from(
      out,
      (_, i) => values.map((v) => v.get(name)![i]).sort((a, b) => a - b)[1],
    );
    t.deepEqual(bits(out), bits(expected), name);
  }
});

test('every rule names the participant whose update is unusable, whatever its position', (t) => {
  for (const [rule, config] of RULES) {
    const nan = step(2);
    nan.get(B_D)![4] = Number.NaN;
    failsWith(
      t,
      'AGGREGATION_NOT_FINITE',
      /^participant p-bob: /,
    )(() =>
      aggregateContributions(rule, config, SCHEMA, [THREE[0], THREE[1], contribution('p-bob', 7, nan)]),
    );
    const lacking = new Map(step(2));
    lacking.delete(A_Q);
    failsWith(
      t,
      'AGGREGATION_TENSOR_NAME',
      /^participant p-bob: update: lacks tensor .*q_proj\.lora_A\.weight/,
    )(() => aggregateContributions(rule, config, SCHEMA, [contribution('p-bob', 7, lacking), THREE[1]]));
    failsWith(
      t,
      'AGGREGATION_WEIGHT',
      /^participant p-carol: weight 0 is not a positive integer/,
    )(() => aggregateContributions(rule, config, SCHEMA, [THREE[1], contribution('p-carol', 0, step(3))]));
  }
  // With clipping the updates are read twice (norms first); the error still names the participant.
  failsWith(
    t,
    'AGGREGATION_WEIGHT',
    /^participant p-carol: weight 1\.5 /,
  )(() =>
    aggregateContributions(
      'median',
      { clipping: { kind: 'adaptive', multiplier: 2 } },
      SCHEMA,
      [THREE[1], contribution('p-carol', 1.5, step(3))],
      GLOBAL,
    ),
  );
  failsWith(
    t,
    'AGGREGATION_EMPTY',
    /no update was counted/,
  )(() => aggregateContributions('fedit', {}, SCHEMA, []));
  failsWith(
    t,
    'AGGREGATION_UNKNOWN_RULE',
    /unknown aggregation rule "fedprox"; known rules: fedavg-uniform, fedit, krum, median, product-svd, trimmed-mean/,
  )(() => aggregateContributions('fedprox', {}, SCHEMA, THREE));
});

test('the full order: weight cap and adaptive clipping, then the weighted mean, then the server step', (t) => {
  const g = GLOBAL;
  const poisoned = new Map(
    [...step(9)].map(([name, x]) => [name, x.map((v, i) => g.get(name)![i] + 50 * (v - g.get(name)![i]))]),
  );
  const contributions = [...THREE, contribution('p-dave', 1e6, poisoned)];
  const config = {
    weightCap: 30,
    clipping: { kind: 'adaptive', multiplier: '1.25' },
    serverOptimizer: { ...ADAM, kind: 'yogi' },
  };
  const ordered = canonical(contributions);
  const norms = ordered.map((c) => norm(valuesOf(c), GLOBAL));
  const sorted = [...norms].sort((a, b) => a - b);
  const bound = 1.25 * ((sorted[1] + sorted[2]) / 2);
  const target = weightedMean(
    ordered.map((c, k) => ({
      weight: Math.min(c.exampleCount, 30),
      values: clip(valuesOf(c), GLOBAL, Math.min(1, bound / norms[k])),
    })),
  );
  const settings = aggregationRule('fedit').settings(config);
  const expected = serverStep(settings.serverOptimizer!, SCHEMA, GLOBAL, target, undefined);
  const result = aggregateRound({ rule: 'fedit', config, schema: SCHEMA, contributions, global: GLOBAL });
  t.is(result.clipBound, bound);
  t.deepEqual(adapterBits(result.adapter), adapterBits(expected.adapter));
  t.deepEqual(adapterBits(result.serverState!), adapterBits(expected.state!));
});
