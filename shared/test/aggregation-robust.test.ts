// Robust combiners (coordinate median, trimmed mean, Krum and multi-Krum): what replaces the
// weighted mean on the plaintext path when one participant may be hostile. Hand-computed cases,
// the properties the papers rely on, poisoning at this level, and one case pinned to the bit
// (the values computed independently in Python, following each file header's arithmetic).

import test from 'ava';
import {
  adaptiveClipBound,
  AggregationError,
  clipScale,
  clipToward,
  coordinateMedian,
  krumScores,
  multiKrumMean,
  multiKrumSelect,
  trimCount,
  trimmedMean,
  updateNorm,
  type AdapterSchema,
  type AggregationErrorCode,
  type Values64,
} from '@fedit/shared';

const A = 'q.lora_A';
const B = 'q.lora_B';
const schema: AdapterSchema = new Map([
  [A, [1, 3]],
  [B, [2, 1]],
]);

const isAggregationError = (code: AggregationErrorCode, text?: RegExp) => (err: unknown) =>
  err instanceof AggregationError && err.code === code && (text === undefined || text.test(err.message));

function values64(a: readonly number[], b: readonly number[]): Values64 {
  return new Map([
    [A, Float64Array.from(a)],
    [B, Float64Array.from(b)],
  ]);
}

/** Deterministic pseudo-random updates of the schema, values in [-0.5, 0.5). */
function randomUpdates(count: number, seed: number): Values64[] {
  let state = seed * 2654435761 + 1;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31 - 0.5;
  };
  return Array.from({ length: count }, () => values64([next(), next(), next()], [next(), next()]));
}

const hex = (x: number) => {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  return view.getBigUint64(0).toString(16).padStart(16, '0');
};
const hexes = (result: ReadonlyMap<string, Float64Array>) =>
  Object.fromEntries([...result].map(([name, values]) => [name, [...values].map(hex)]));

const handCase = [
  values64([1, -2, 0.5], [10, 0]),
  values64([3, 5, 0.25], [-10, -0]),
  values64([2, 1, 0.75], [0, 0]),
];

test('the median of an odd number of updates is the middle value of each element, a zero always +0', (t) => {
  const median = coordinateMedian(handCase, schema);
  t.deepEqual([...median.keys()], [A, B]);
  t.deepEqual(median.get(A), Float64Array.from([2, 1, 0.5]));
  t.deepEqual(median.get(B), Float64Array.from([0, 0]));
  t.true(Object.is(median.get(B)![1], 0), 'the middle of -0, 0, 0 comes out as +0');
  t.true(Object.is(coordinateMedian([values64([0, 0, 0], [-0, -0])], schema).get(B)![0], 0));
});

test('the median of an even number of updates is the mean of the two middle values', (t) => {
  const four = [...handCase, values64([100, -1, 1], [4, 4])];
  const median = coordinateMedian(four, schema);
  t.deepEqual(median.get(A), Float64Array.from([2.5, 0, 0.625]));
  t.deepEqual(median.get(B), Float64Array.from([2, 0]));
});

test('the trimmed mean drops floor(fraction * K) values from each end and averages the rest', (t) => {
  const five = [...handCase, values64([100, -1, 1], [4, 4]), values64([-7, 9, 0], [1, 2])];
  // floor(0.2 * 5) = 1 from each end.
  const trimmed = trimmedMean(five, schema, 0.2);
  t.deepEqual(trimmed.get(A), Float64Array.from([2, 5 / 3, 0.5]));
  t.deepEqual(trimmed.get(B), Float64Array.from([5 / 3, 2 / 3]));
  // floor(0.4 * 5) = 2: the median.
  t.deepEqual(trimmedMean(five, schema, 0.4), coordinateMedian(five, schema));
  // floor(0.19 * 5) = 0, raised to 1: a positive fraction always trims.
  t.deepEqual(trimmedMean(five, schema, 0.19), trimmed);
  // A fraction of 0: the plain mean.
  t.deepEqual(trimmedMean(five, schema, 0).get(A), Float64Array.from([99 / 5, 12 / 5, 2.5 / 5]));
});

test('the trim count: at least one from each end for a positive fraction, while one value stays', (t) => {
  // [fraction, K, t]
  const cases: [number, number, number][] = [
    [0, 1, 0],
    [0, 3, 0],
    [0, 10, 0],
    [0.2, 1, 0],
    [0.2, 2, 0],
    [0.2, 3, 1],
    [0.2, 4, 1],
    [0.2, 5, 1],
    [0.2, 9, 1],
    [0.2, 10, 2],
    [0.01, 3, 1],
    [0.49, 3, 1],
    [0.49, 4, 1],
    [0.49, 5, 2],
    [0.49, 100, 49],
    [0.3, 10, 3],
  ];
  for (const [fraction, k, expected] of cases)
    t.is(trimCount(fraction, k), expected, `f ${fraction}, K ${k}`);
  // The binary64 product, then floor: 0.29 * 100 rounds to 28.999999999999996, not 29.
  t.is(trimCount(0.29, 100), 28);
  t.is(trimCount(0.07, 100), 7);
});

test('with three updates the trimmed mean is the median (one hostile value at either end is dropped)', (t) => {
  t.deepEqual(trimmedMean(handCase, schema, 0.2), coordinateMedian(handCase, schema));
  t.true(Object.is(trimmedMean(handCase, schema, 0.2).get(B)![1], 0), 'the middle of -0, 0, 0 is +0');
  const hostile = [handCase[0], handCase[1], values64([1e6, -1e6, 1e6], [-1e6, 1e6])];
  const trimmed = trimmedMean(hostile, schema, 0.2);
  t.deepEqual(trimmed.get(A), Float64Array.from([3, -2, 0.5]));
  t.deepEqual(trimmed.get(B), Float64Array.from([-10, 0]));
  // Two updates: nothing can be told apart, so the plain mean.
  t.deepEqual(trimmedMean(handCase.slice(0, 2), schema, 0.2).get(A), Float64Array.from([2, 1.5, 0.375]));
});

test('the trimmed mean and Krum scores add in ascending order, which rounding can tell apart from any other', (t) => {
  const tiny = 2 ** -54;
  // In canonical (or descending) order 1 + tiny rounds back to 1 three times; ascending, the
  // three tinies add up first and survive.
  const column = [1, tiny, tiny, tiny].map((x) => new Map([[A, Float64Array.of(x)]]));
  const lineSchema: AdapterSchema = new Map([[A, [1]]]);
  t.is(trimmedMean(column, lineSchema, 0).get(A)![0], (1 + 2 ** -52) / 4);
  // Point 0's four nearest (f = 0, K = 6) are at squared distances tiny, tiny, tiny and 1.
  const line = [0, 2 ** -27, -(2 ** -27), 2 ** -27, 1, 5].map((x) => new Map([[A, Float64Array.of(x)]]));
  t.is(krumScores(line, 0)[0], 1 + 2 ** -52);
});

test('the median of an odd number of updates is always one of the inputs', (t) => {
  const updates = randomUpdates(7, 3);
  const median = coordinateMedian(updates, schema);
  for (const [name, values] of median) {
    values.forEach((v, i) =>
      t.true(
        updates.some((u) => u.get(name)![i] === v),
        `${name}[${i}]`,
      ),
    );
  }
});

test('the trimmed mean with no trim is the plain mean', (t) => {
  const updates = randomUpdates(6, 5);
  const mean = trimmedMean(updates, schema, 0);
  for (const [name, values] of mean) {
    values.forEach((v, i) => {
      const column = updates.map((u) => u.get(name)![i]);
      // Bit for bit: the header's sum in ascending order.
      const ascending = [...column].sort((a, b) => a - b).reduce((s, x) => s + x, 0) / column.length;
      t.is(v, ascending, `${name}[${i}]`);
      // And the mean in any order, to rounding.
      const direct = column.reduce((s, x) => s + x, 0) / column.length;
      t.true(Math.abs(v - direct) <= 4 * Number.EPSILON, `${name}[${i}]: ${v} vs ${direct}`);
    });
  }
});

test('permuting the updates changes no bit of the median or the trimmed mean', (t) => {
  const updates = randomUpdates(6, 9);
  const median = coordinateMedian(updates, schema);
  const trimmed = trimmedMean(updates, schema, 0.25);
  for (const order of [
    [5, 4, 3, 2, 1, 0],
    [2, 0, 5, 1, 4, 3],
    [1, 3, 5, 0, 2, 4],
  ]) {
    const permuted = order.map((k) => updates[k]);
    t.deepEqual(coordinateMedian(permuted, schema), median);
    t.deepEqual(trimmedMean(permuted, schema, 0.25), trimmed);
  }
});

test('Krum scores each update by its squared distances to its K - f - 2 nearest others and keeps the lowest', (t) => {
  // One value per update: distances are squared differences, easy to check by hand.
  const line = [0, 1, 2, 10, 3].map((x) => new Map([[A, Float64Array.of(x)]]));
  // f = 1, so each score sums the 2 nearest: 0 -> 1+4, 1 -> 1+1, 2 -> 1+1, 10 -> 49+64, 3 -> 1+4.
  t.deepEqual(krumScores(line, 1), [5, 2, 2, 113, 5]);
  // f = 0 sums the 3 nearest.
  t.deepEqual(krumScores(line, 0), [14, 6, 6, 194, 14]);
  // Ascending score, ties by index.
  t.deepEqual(multiKrumSelect(line, 1, 1), [1]);
  t.deepEqual(multiKrumSelect(line, 1, 3), [1, 2, 0]);
  t.deepEqual(multiKrumSelect(line, 1, 4), [1, 2, 0, 4]);
  const lineSchema: AdapterSchema = new Map([[A, [1]]]);
  t.deepEqual(multiKrumMean(line, lineSchema, 1, 4).get(A), Float64Array.of(1.5));
  t.deepEqual(multiKrumMean(line, lineSchema, 1, 1).get(A), Float64Array.of(1));
});

test('Krum distances run over every tensor of the update', (t) => {
  const updates = randomUpdates(5, 13);
  const scores = krumScores(updates, 1);
  const distance = (x: Values64, y: Values64) => {
    let sum = 0;
    for (const name of [A, B]) x.get(name)!.forEach((v, e) => (sum += (v - y.get(name)![e]) ** 2));
    return sum;
  };
  updates.forEach((u, j) => {
    const nearest = updates
      .filter((_, k) => k !== j)
      .map((v) => distance(u, v))
      .sort((a, b) => a - b)
      .slice(0, 2);
    t.is(scores[j], nearest[0] + nearest[1], `update ${j}`);
  });
});

/** Five updates around a shared direction; number 3 is replaced by `poison` of that direction. */
function poisonedRound(poison: number): { updates: Values64[]; honest: Values64[] } {
  const direction = [0.3, -0.2, 0.1, 0.25, -0.15];
  const jitter = randomUpdates(5, 17);
  const around = (k: number, times: number) => {
    const j = [...jitter[k].get(A)!, ...jitter[k].get(B)!];
    const v = direction.map((d, e) => times * d + (times === 1 ? 0.05 * j[e] : 0));
    return values64(v.slice(0, 3), v.slice(3));
  };
  const updates = [0, 1, 2, 3, 4].map((k) => around(k, k === 3 ? poison : 1));
  return { updates, honest: updates.filter((_, k) => k !== 3) };
}

for (const [label, poison] of [
  ['scaled x1000', 1000],
  ['sign-flipped', -1],
  ['sign-flipped and scaled x10', -10],
] as const) {
  test(`with one ${label} update in five, median, trimmed mean and multi-Krum stay within the honest updates' range`, (t) => {
    const { updates, honest } = poisonedRound(poison);
    const results = {
      median: coordinateMedian(updates, schema),
      trimmed: trimmedMean(updates, schema, 0.2),
      multiKrum: multiKrumMean(updates, schema, 1, 4),
    };
    for (const [rule, result] of Object.entries(results)) {
      for (const [name, values] of result) {
        values.forEach((v, i) => {
          const column = honest.map((u) => u.get(name)![i]);
          t.true(v >= Math.min(...column) && v <= Math.max(...column), `${rule} ${name}[${i}] = ${v}`);
        });
      }
    }
    t.false(multiKrumSelect(updates, 1, 4).includes(3), 'multi-Krum leaves the poisoned update out');
    t.is(multiKrumSelect(updates, 1, 1)[0] === 3, false);
  });
}

test('pinned to the bit: clip to the median norm, then median, trimmed mean, Krum scores and multi-Krum', (t) => {
  const f32 = (xs: number[]) => Float32Array.from(xs);
  const global = new Map([
    [A, f32([0.1, -0.2, 0.3])],
    [B, f32([0.7, 1e-3])],
  ]);
  const updates = [
    [
      [0.15, -0.1, 0.31],
      [0.65, 0.0021],
    ],
    [
      [0.11, -0.25, 0.2],
      [0.8, -0.004],
    ],
    [
      [0.3, -0.21, 0.29],
      [0.71, 0.001],
    ],
    [
      [0.02, -0.3, 0.33],
      [0.5, 0.003],
    ],
    [
      [0.12, -0.18, 0.4],
      [0.9, -0.0005],
    ],
  ].map(
    ([a, b]) =>
      new Map([
        [A, f32(a)],
        [B, f32(b)],
      ]),
  );
  const norms = updates.map((u) => updateNorm(u, global));
  const bound = adaptiveClipBound(norms, 1);
  t.deepEqual(norms.map(hex), [
    '3fbf7585894743a0',
    '3fc340d5c921c6d9',
    '3fc9b2216427265e',
    '3fcea4163c8f7b43',
    '3fccd9b1f9a902a1',
  ]);
  t.is(hex(bound), '3fc9b2216427265e');
  const clipped = updates.map((u, k) => clipToward(u, global, clipScale(norms[k], bound)));
  t.deepEqual(
    clipped.map((_, k) => clipScale(norms[k], bound)),
    [1, 1, 1, 0.8386100958012377, 0.8906582579285998],
  );
  t.deepEqual(hexes(clipped[0]), {
    [A]: ['3fc3333340000000', 'bfb99999a0000000', '3fd3d70a40000000'],
    [B]: ['3fe4ccccc0000000', '3f613404e0000000'],
  });
  t.deepEqual(hexes(coordinateMedian(clipped, schema)), {
    [A]: ['3fbe2900e1d56e81', 'bfcae147a0000000', '3fd3d70a40000000'],
    [B]: ['3fe6b851e0000000', '3f50624de0000000'],
  });
  t.deepEqual(hexes(trimmedMean(clipped, schema, 0.2)), {
    [A]: ['3fc01eba304e3d15', 'bfcb66648a5c6d95', '3fd3bc991107b102'],
    [B]: ['3fe70a3d6aaaaaab', '3f4e30bd43f68d7b'],
  });
  t.deepEqual(krumScores(clipped, 1).map(hex), [
    '3fb8eb2be38c2f24',
    '3fb9b6fee170b4da',
    '3fb7afcc60dca41a',
    '3fc3fa52d57f4d68',
    '3fbcd4601eed256a',
  ]);
  t.deepEqual(multiKrumSelect(clipped, 1, 3), [2, 0, 1]);
  t.deepEqual(hexes(multiKrumMean(clipped, schema, 1, 3)), {
    [A]: ['3fc7e4b18aaaaaab', 'bfc7e4b17aaaaaab', '3fd1111110000000'],
    [B]: ['3fe70a3d6aaaaaab', 'bf33a92a80000000'],
  });
});

test('refuses a trim fraction outside [0, 0.5)', (t) => {
  for (const fraction of [0.5, 0.7, -0.1, NaN]) {
    t.true(
      isAggregationError(
        'AGGREGATION_CONFIG',
        /trim fraction/,
      )(t.throws(() => trimmedMean(handCase, schema, fraction))),
    );
  }
});

test('refuses Krum with fewer than 2f + 3 updates, a bad f, or an m outside 1..K - f', (t) => {
  const four = randomUpdates(4, 1);
  t.true(
    isAggregationError(
      'AGGREGATION_CONFIG',
      /K >= 2f \+ 3 = 5 updates; the round has 4/,
    )(t.throws(() => krumScores(four, 1))),
  );
  t.notThrows(() => krumScores(four, 0));
  for (const f of [-1, 0.5, NaN]) {
    t.true(isAggregationError('AGGREGATION_CONFIG', /byzantine count/)(t.throws(() => krumScores(four, f))));
  }
  const five = randomUpdates(5, 2);
  for (const m of [0, 5, 1.5]) {
    t.true(
      isAggregationError(
        'AGGREGATION_CONFIG',
        /from 1 to K - f = 4/,
      )(t.throws(() => multiKrumSelect(five, 1, m))),
    );
  }
});

test('refuses updates that do not fit the schema, naming the update and the tensor', (t) => {
  const [first, second] = randomUpdates(2, 4);
  t.true(isAggregationError('AGGREGATION_EMPTY')(t.throws(() => coordinateMedian([], schema))));
  const lacking = new Map([[A, first.get(A)!]]);
  t.true(
    isAggregationError(
      'AGGREGATION_TENSOR_NAME',
      /^update 1: lacks tensor q\.lora_B/,
    )(t.throws(() => coordinateMedian([first, lacking], schema))),
  );
  const extra = new Map([...second, ['k.lora_A', Float64Array.of(1)]]);
  t.true(
    isAggregationError(
      'AGGREGATION_TENSOR_NAME',
      /^update 1: has tensor k\.lora_A/,
    )(t.throws(() => trimmedMean([first, extra], schema, 0))),
  );
  const short = new Map([...second, [B, Float64Array.of(1)]]);
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /^update 1: tensor q\.lora_B is not a Float64Array of 2 values/,
    )(t.throws(() => coordinateMedian([first, short], schema))),
  );
  const narrow = new Map<string, Float32Array | Float64Array>([
    ...second,
    [B, Float32Array.of(1, 2)],
  ]) as Values64;
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /Float64Array/,
    )(t.throws(() => coordinateMedian([first, narrow], schema))),
  );
  const infinite = new Map([...second, [A, Float64Array.of(0, -Infinity, 0)]]);
  t.true(
    isAggregationError(
      'AGGREGATION_NOT_FINITE',
      /^update 0: tensor q\.lora_A holds -Infinity at flat index 1/,
    )(t.throws(() => coordinateMedian([infinite, first], schema))),
  );
  // Krum, which takes no schema, checks the updates against the first one.
  const krumRound = [...randomUpdates(4, 6), lacking];
  t.true(
    isAggregationError(
      'AGGREGATION_TENSOR_NAME',
      /^update 4: lacks tensor q\.lora_B/,
    )(t.throws(() => krumScores(krumRound, 1))),
  );
});
