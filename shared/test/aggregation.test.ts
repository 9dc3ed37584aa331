// Aggregation rules: FedIT is the example-weighted mean of every LoRA tensor, computed by a
// streaming accumulator with arithmetic fixed to the bit, so an auditor recomputes it exactly.

import test from 'ava';
import {
  type AggregationConfig,
  WeightedMeanAccumulator,
  adapterSchema,
  aggregateContributions,
  AggregationError,
  aggregationRule,
  aggregationRuleNames,
  DEFAULT_AGGREGATION_RULE,
  hashTensors,
  tensorFromF32,
  tensorsFromValues,
  tensorValues,
  updateNorm,
  type AdapterSchema,
  type AggregationErrorCode,
  type Tensor,
} from '@fedit/shared';

const A0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
const B0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight';
const A1 = 'base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight';
const B1 = 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight';

const schema: AdapterSchema = new Map<string, number[]>([
  [A0, [2, 6]],
  [B0, [8, 2]],
  [A1, [2, 6]],
  [B1, [4, 2]],
]);

/** Deterministic pseudo-random float32 values spanning several orders of magnitude. */
function update(seed: number): Map<string, Float32Array> {
  let state = seed * 2654435761 + 1;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const m = new Map<string, Float32Array>();
  for (const [name, shape] of schema) {
    const n = shape[0] * shape[1];
    m.set(
      name,
      Float32Array.from({ length: n }, () => (next() - 0.5) * 10 ** Math.floor(next() * 6 - 3)),
    );
  }
  return m;
}

const participants = [
  { participant: 'p-carol', exampleCount: 120, update: update(3) },
  { participant: 'p-alice', exampleCount: 7, update: update(1) },
  { participant: 'p-dave', exampleCount: 1, update: update(4) },
  { participant: 'p-bob', exampleCount: 4096, update: update(2) },
];

const isAggregationError = (code: AggregationErrorCode, text?: RegExp) => (err: unknown) =>
  err instanceof AggregationError && err.code === code && (text === undefined || text.test(err.message));

test('fedit is the example-count-weighted mean of every tensor, A and B separately', (t) => {
  const result = aggregateContributions('fedit', {}, schema, participants);
  const total = participants.reduce((s, p) => s + p.exampleCount, 0);
  t.deepEqual([...result.keys()], [...schema.keys()]);
  for (const [name, values] of result) {
    for (let i = 0; i < values.length; i++) {
      // The paper's formula, sum_k (n_k / N) * x_k, in float64.
      let direct = 0;
      for (const p of participants) direct += (p.exampleCount / total) * p.update.get(name)![i];
      t.true(
        Math.abs(values[i] - direct) <= Math.abs(direct) * 2 ** -23 + 1e-30,
        `${name}[${i}]: ${values[i]} vs ${direct}`,
      );
    }
  }
});

test('fedit follows the documented arithmetic bit for bit: float64 sums of w*x in participant order, / W, to float32', (t) => {
  const result = aggregateContributions('fedit', {}, schema, participants);
  const ordered = [...participants].sort((a, b) => (a.participant < b.participant ? -1 : 1));
  const total = ordered.reduce((s, p) => s + p.exampleCount, 0);
  for (const [name, values] of result) {
    const expected = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      let sum = 0;
      for (const p of ordered) sum = sum + p.exampleCount * p.update.get(name)![i];
      expected[i] = Math.fround(sum / total);
    }
    t.deepEqual(values, expected, name);
  }
});

test('the canonical order makes the result independent of the order updates arrive in', (t) => {
  const reference = hashTensors(
    tensorsFromValues(schema, aggregateContributions('fedit', {}, schema, participants)),
  );
  const orders = [
    [0, 1, 2, 3],
    [3, 2, 1, 0],
    [1, 3, 0, 2],
    [2, 0, 3, 1],
  ];
  for (const order of orders) {
    const shuffled = order.map((i) => participants[i]);
    const hash = hashTensors(
      tensorsFromValues(schema, aggregateContributions('fedit', {}, schema, shuffled)),
    );
    t.is(hash, reference);
  }
});

test('adding in another order changes the result by float rounding only', (t) => {
  const forward = new WeightedMeanAccumulator(schema, 'example-count');
  const backward = new WeightedMeanAccumulator(schema, 'example-count');
  for (const p of participants) forward.add(p.update, p.exampleCount);
  for (const p of [...participants].reverse()) backward.add(p.update, p.exampleCount);
  const a = forward.result();
  const b = backward.result();
  for (const [name, values] of a) {
    const other = b.get(name)!;
    for (let i = 0; i < values.length; i++) {
      // At most one float32 ulp apart.
      t.true(Math.abs(values[i] - other[i]) <= Math.abs(values[i]) * 2 ** -23 + 1e-38, `${name}[${i}]`);
    }
  }
});

test('fedavg-uniform is the plain mean, ignoring example counts', (t) => {
  const result = aggregateContributions('fedavg-uniform', {}, schema, participants);
  const ordered = [...participants].sort((a, b) => (a.participant < b.participant ? -1 : 1));
  for (const [name, values] of result) {
    const expected = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      let sum = 0;
      for (const p of ordered) sum += p.update.get(name)![i];
      expected[i] = sum / ordered.length;
    }
    t.deepEqual(values, expected, name);
  }
  const accumulator = new WeightedMeanAccumulator(schema, 'uniform');
  accumulator.add(update(1), 10);
  accumulator.add(update(2), 3);
  t.is(accumulator.totalWeight, 2);
});

/** The least config each rule accepts: the settings it requires. */
const MINIMAL_CONFIG: Readonly<Record<string, AggregationConfig>> = {
  'trimmed-mean': { trimFraction: '0.2' },
  krum: { byzantine: 0, krumSelect: 1 },
  'product-svd': { rank: 4, alpha: 8 },
};
const minimalConfig = (rule: string): AggregationConfig => MINIMAL_CONFIG[rule] ?? {};

test('a single update aggregates to itself under every rule', (t) => {
  for (const name of aggregationRuleNames().filter((n) => n !== 'product-svd')) {
    const only = update(9);
    const result = aggregateContributions(name, minimalConfig(name), schema, [
      { participant: 'p', exampleCount: 33, update: only },
    ]);
    for (const [tensor, values] of result) t.deepEqual(values, only.get(tensor), `${name} ${tensor}`);
  }
});

test('the accumulator holds one float64 sum per adapter value, however many updates it has seen', (t) => {
  const accumulator = new WeightedMeanAccumulator(schema, 'example-count');
  const values = [...schema.values()].reduce((s, shape) => s + shape[0] * shape[1], 0);
  t.is(accumulator.stateBytes, 8 * values);
  for (let k = 0; k < 50; k++) accumulator.add(update(k), k + 1);
  t.is(accumulator.count, 50);
  t.is(accumulator.totalWeight, (50 * 51) / 2);
  t.is(accumulator.stateBytes, 8 * values);
  // Nothing enumerable hangs off the accumulator: its state is private and fixed in size.
  t.deepEqual(Object.keys(accumulator), []);
});

test('the accumulator keeps no reference to the updates it was given', (t) => {
  const first = update(1);
  const second = update(2);
  const accumulator = new WeightedMeanAccumulator(schema, 'example-count');
  accumulator.add(first, 3);
  accumulator.add(second, 5);
  const before = accumulator.result();
  for (const values of [...first.values(), ...second.values()]) values.fill(1e6);
  t.deepEqual(accumulator.result(), before);
  // result() hands out fresh arrays.
  before.get(A0)!.fill(0);
  t.notDeepEqual(accumulator.result().get(A0), before.get(A0));
});

test('rejects an update that lacks a tensor, naming it', (t) => {
  const accumulator = new WeightedMeanAccumulator(schema, 'example-count');
  const bad = update(1);
  bad.delete(B1);
  const err = t.throws(() => accumulator.add(bad, 1));
  t.true(
    isAggregationError('AGGREGATION_TENSOR_NAME', /lacks tensor .*v_proj\.lora_B\.weight \[4, 2\]/)(err),
  );
});

test('rejects an update with a tensor the global adapter does not have, naming it', (t) => {
  const accumulator = new WeightedMeanAccumulator(schema, 'example-count');
  const bad = update(1);
  bad.set('base_model.model.model.layers.9.mlp.up_proj.lora_A.weight', new Float32Array(4));
  const err = t.throws(() => accumulator.add(bad, 1));
  t.true(isAggregationError('AGGREGATION_TENSOR_NAME', /layers\.9\.mlp\.up_proj\.lora_A/)(err));
});

test('rejects a tensor of the wrong size, naming it and its shape', (t) => {
  const accumulator = new WeightedMeanAccumulator(schema, 'example-count');
  const bad = update(1);
  bad.set(A1, new Float32Array(11));
  const err = t.throws(() => accumulator.add(bad, 1));
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /v_proj\.lora_A\.weight has 11 values; its shape \[2, 6\] needs 12/,
    )(err),
  );
});

test('rejects NaN and infinite values, naming the tensor and the index, and leaves the sums untouched', (t) => {
  const accumulator = new WeightedMeanAccumulator(schema, 'example-count');
  accumulator.add(update(1), 2);
  const before = accumulator.result();
  for (const bad of [NaN, Infinity, -Infinity]) {
    const poisoned = update(2);
    poisoned.get(B1)![5] = bad;
    const err = t.throws(() => accumulator.add(poisoned, 4));
    t.true(
      isAggregationError(
        'AGGREGATION_NOT_FINITE',
        new RegExp(`v_proj\\.lora_B\\.weight holds ${bad} at flat index 5`),
      )(err),
    );
  }
  t.is(accumulator.count, 1);
  t.is(accumulator.totalWeight, 2);
  t.deepEqual(accumulator.result(), before);
});

test('rejects weights that are not positive integers, and weights summing past 2^53', (t) => {
  const accumulator = new WeightedMeanAccumulator(schema, 'example-count');
  for (const weight of [0, -3, 1.5, NaN, Infinity]) {
    t.true(
      isAggregationError(
        'AGGREGATION_WEIGHT',
        /not a positive integer/,
      )(t.throws(() => accumulator.add(update(1), weight))),
    );
  }
  accumulator.add(update(1), Number.MAX_SAFE_INTEGER - 1);
  t.true(isAggregationError('AGGREGATION_WEIGHT', /2\^53/)(t.throws(() => accumulator.add(update(2), 2))));
  // The uniform rule ignores counts but still refuses nonsense.
  const uniform = new WeightedMeanAccumulator(schema, 'uniform');
  t.true(isAggregationError('AGGREGATION_WEIGHT')(t.throws(() => uniform.add(update(1), 0))));
});

test('a participant named in the error when aggregateContributions meets a bad update', (t) => {
  const bad = update(5);
  bad.get(A0)![0] = NaN;
  const err = t.throws(() =>
    aggregateContributions('fedit', {}, schema, [
      ...participants,
      { participant: 'p-eve', exampleCount: 3, update: bad },
    ]),
  );
  t.true(
    isAggregationError(
      'AGGREGATION_NOT_FINITE',
      /^participant p-eve: .*q_proj\.lora_A\.weight holds NaN/,
    )(err),
  );
});

test('aggregateContributions loads lazily, in canonical order', (t) => {
  const loaded: string[] = [];
  const lazy = participants.map((p) => ({
    ...p,
    update: () => {
      loaded.push(p.participant);
      return p.update;
    },
  }));
  aggregateContributions('fedit', {}, schema, lazy);
  t.deepEqual(loaded, ['p-alice', 'p-bob', 'p-carol', 'p-dave']);
});

test('asking for a result before any update is an error', (t) => {
  const accumulator = new WeightedMeanAccumulator(schema, 'example-count');
  t.true(isAggregationError('AGGREGATION_EMPTY')(t.throws(() => accumulator.result())));
});

test('an unknown rule name lists the known rules', (t) => {
  t.is(DEFAULT_AGGREGATION_RULE, 'fedit');
  t.true(aggregationRuleNames().includes('fedit'));
  const err = t.throws(() => aggregationRule('bulyan'));
  t.true(
    isAggregationError(
      'AGGREGATION_UNKNOWN_RULE',
      new RegExp(`"bulyan"; known rules: ${aggregationRuleNames().join(', ')}$`),
    )(err),
  );
});

test('rules refuse settings they do not take', (t) => {
  for (const name of aggregationRuleNames()) {
    const rule = aggregationRule(name);
    t.notThrows(() => rule.settings(minimalConfig(name)));
    const err = t.throws(() => rule.settings({ ...minimalConfig(name), serverLr: '0.5' }));
    t.true(
      isAggregationError(
        'AGGREGATION_CONFIG',
        /unknown setting "serverLr"; it takes frozenA, scaffold, weightCap/,
      )(err),
    );
  }
});

test('updateNorm is the L2 norm of the update, or of its difference from a reference', (t) => {
  const u = update(1);
  const g = update(2);
  let squares = 0;
  let deltaSquares = 0;
  for (const [name, values] of u) {
    for (let i = 0; i < values.length; i++) {
      squares += values[i] ** 2;
      deltaSquares += (values[i] - g.get(name)![i]) ** 2;
    }
  }
  t.true(Math.abs(updateNorm(u) - Math.sqrt(squares)) <= 1e-12 * Math.sqrt(squares));
  t.true(Math.abs(updateNorm(u, g) - Math.sqrt(deltaSquares)) <= 1e-12 * Math.sqrt(deltaSquares));
  t.is(updateNorm(u, u), 0);
  const missing = new Map(u);
  missing.delete(A1);
  t.true(
    isAggregationError(
      'AGGREGATION_TENSOR_NAME',
      /lacks tensor .*v_proj\.lora_A/,
    )(t.throws(() => updateNorm(missing, g))),
  );
  const short = new Map(u).set(B0, new Float32Array(3));
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /q_proj\.lora_B\.weight has 3 values, the reference's 16/,
    )(t.throws(() => updateNorm(short, g))),
  );
});

test('schemas, values and tensors convert into each other and hash like the adapter', (t) => {
  const tensors = new Map<string, Tensor>();
  const u = update(4);
  for (const [name, shape] of schema) tensors.set(name, tensorFromF32(shape, u.get(name)!));
  t.deepEqual(adapterSchema(tensors), schema);
  t.deepEqual(tensorValues(tensors), u);
  t.is(hashTensors(tensorsFromValues(schema, u)), hashTensors(tensors));
  // BF16 updates decode to Float32 for aggregation.
  const bf16 = new Map(
    [...tensors].map(([n, tensor]) => [n, tensorFromF32(tensor.shape, u.get(n)!, 'BF16')]),
  );
  t.deepEqual(adapterSchema(bf16), schema);
  t.notThrows(() => new WeightedMeanAccumulator(schema, 'example-count').add(tensorValues(bf16), 1));
});
