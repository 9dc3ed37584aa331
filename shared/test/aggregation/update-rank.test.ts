// Updates of a lower LoRA rank (update-rank.ts): which shapes are a rank r_k <= r, which rules take
// them, and that every step of the round measures such an update from the global adapter truncated
// to r_k: admission (announced shapes, norm bound), the pipeline (validation, clipping) and the
// product-space rule at scale alpha / r_k. Expected values come from truncateAdapterRank,
// productSvdAdapter and clipToward called directly, not from the code under test.

import test from 'ava';
import {
  AggregationError,
  admitUpdateTensors,
  aggregateRound,
  checkAnnouncedSchema,
  clipToward,
  lowerRankOf,
  productSvdAdapter,
  ruleTakesLowerRanks,
  schemaAtRank,
  tensorFromF32,
  truncateAdapterRank,
  updateNorm,
  type AdapterSchema,
  type Contribution,
  type Tensor,
  type TensorValues,
} from '@fedit/shared';
import { A_D, A_Q, B_D, B_Q, SCHEMA, randomF32, update } from './lora-fixtures.ts';

const GLOBAL = update(4, 1000);
const ALPHA = 8;

/** The global adapter truncated to `rank`, moved by a seeded step: what a rank-`rank` participant uploads. */
function trainedAt(rank: number, seed: number, scale = 0.01): Map<string, Float32Array> {
  const start = truncateAdapterRank(GLOBAL, SCHEMA, rank);
  return new Map(
    [...start].map(([name, v], k) => {
      const d = randomF32(v.length, seed * 31 + k, scale);
      return [name, v.map((x, i) => x + d[i])];
    }),
  );
}

const shapesWith = (changes: Record<string, number[]>): AdapterSchema =>
  new Map([...SCHEMA].map(([name, shape]) => [name, changes[name] ?? shape]));

/** The AggregationError `f` throws (code and message), or undefined when it throws none. */
function codeOf(f: () => unknown): { code: string; message: string } | undefined {
  try {
    f();
  } catch (err) {
    if (err instanceof AggregationError) return { code: err.code, message: err.message };
    throw err;
  }
  return undefined;
}

test('the global shapes are no lower rank; one rank r_k < r for every tensor is r_k, under a rule that takes it', (t) => {
  t.is(lowerRankOf(SCHEMA, SCHEMA, 'fedit'), undefined);
  t.is(lowerRankOf(SCHEMA, schemaAtRank(SCHEMA, 2), 'product-svd'), 2);
  t.is(lowerRankOf(SCHEMA, schemaAtRank(SCHEMA, 1), 'product-svd'), 1);
  t.true(ruleTakesLowerRanks('product-svd'));
  for (const rule of ['fedit', 'fedavg-uniform', 'median', 'trimmed-mean', 'krum', 'no-such-rule'])
    t.false(ruleTakesLowerRanks(rule), rule);
});

test('a rule that averages tensor by tensor refuses a lower rank, naming the tensor, both shapes and the rules that take it', (t) => {
  for (const rule of ['fedit', 'median', 'krum']) {
    const refused = codeOf(() => lowerRankOf(SCHEMA, schemaAtRank(SCHEMA, 2), rule));
    t.is(refused?.code, 'AGGREGATION_RANK');
    t.is(
      refused?.message,
      `${A_D} has shape [2,10], the global adapter's is [4,10]: a rank-2 update, and rule ${rule} aggregates only the federation's rank (rules that take lower ranks: product-svd)`,
    );
  }
});

test('tensors of different ranks, a rank above r, and shapes that are no rank are refused', (t) => {
  const mixed = codeOf(() =>
    lowerRankOf(SCHEMA, shapesWith({ [A_Q]: [2, 6], [B_Q]: [8, 2] }), 'product-svd'),
  );
  t.is(mixed?.code, 'AGGREGATION_RANK');
  t.regex(
    mixed!.message,
    /has shape \[2,6\] \(rank 2\) but .*down_proj\.lora_A\.weight is rank 4: every tensor of one update has the same LoRA rank/,
  );
  const halfModule = codeOf(() =>
    lowerRankOf(SCHEMA, shapesWith({ [A_D]: [2, 10], [B_D]: [6, 4] }), 'product-svd'),
  );
  t.is(halfModule?.code, 'AGGREGATION_RANK', 'A and B of one module at different ranks');
  t.like(
    codeOf(() => lowerRankOf(SCHEMA, schemaAtRank(SCHEMA, 5), 'product-svd')),
    {
      code: 'AGGREGATION_SHAPE',
      message: `${A_D} has shape [5,10], the global adapter's is [4,10]`,
    },
  );
  t.like(
    codeOf(() => lowerRankOf(SCHEMA, shapesWith({ [A_Q]: [4, 5] }), 'product-svd')),
    {
      code: 'AGGREGATION_SHAPE',
      message: `${A_Q} has shape [4,5], the global adapter's is [4,6]`,
    },
  );
  const plain: AdapterSchema = new Map([['w', [4, 3]]]);
  t.like(
    codeOf(() => lowerRankOf(plain, new Map([['w', [2, 3]]]), 'product-svd')),
    {
      code: 'AGGREGATION_SHAPE',
    },
  );
});

test('the pipeline takes ranks 4, 2 and 1 under product-svd: productSvdAdapter at scale alpha / r_k, bit for bit', (t) => {
  const updates = [trainedAt(4, 1), trainedAt(2, 2), trainedAt(1, 3)];
  const contributions: Contribution[] = updates.map((values, k) => ({
    participant: `p-${k}`,
    exampleCount: 10 + k,
    update: values,
  }));
  const config = { rank: 4, alpha: '8' };
  const got = aggregateRound({ rule: 'product-svd', config, schema: SCHEMA, contributions, global: GLOBAL });
  const expected = productSvdAdapter(
    updates.map((values, k) => ({ values, weight: 10 + k })),
    SCHEMA,
    { rank: 4, alpha: ALPHA },
  );
  for (const [name, v] of expected) t.deepEqual([...got.adapter.get(name)!], [...v], name);
  const underFedit = codeOf(() =>
    aggregateRound({ rule: 'fedit', config: {}, schema: SCHEMA, contributions, global: GLOBAL }),
  );
  t.is(underFedit?.code, 'AGGREGATION_RANK');
  t.regex(underFedit!.message, /^participant p-1: .*rank-2 update, and rule fedit/);
});

test('clipping measures a rank-2 update from the global adapter truncated to rank 2 and scales it toward that', (t) => {
  const low = trainedAt(2, 5, 0.1);
  const start = truncateAdapterRank(GLOBAL, SCHEMA, 2);
  const normLow = updateNorm(low, start);
  const bound = normLow / 4;
  const config = { rank: 4, alpha: '8', clipping: { kind: 'fixed', bound: bound.toString() } };
  const got = aggregateRound({
    rule: 'product-svd',
    config,
    schema: SCHEMA,
    global: GLOBAL,
    contributions: [{ participant: 'p-low', exampleCount: 1, update: low }],
  });
  const clipped = clipToward(low, start, Number(bound.toString()) / normLow);
  const expected = productSvdAdapter([{ values: clipped, weight: 1 }], SCHEMA, { rank: 4, alpha: ALPHA });
  for (const [name, v] of expected) t.deepEqual([...got.adapter.get(name)!], [...v], name);
  t.is(got.clipBound, Number(bound.toString()));
});

const specs = (schema: AdapterSchema) =>
  [...schema].map(([name, shape]) => ({ name, shape: [...shape], dtype: 'F32' as const }));
const tensors = (values: TensorValues, schema: AdapterSchema): Map<string, Tensor> =>
  new Map([...schema].map(([name, shape]) => [name, tensorFromF32(shape, values.get(name)!)]));

test('admission: the announced rank is refused (UPDATE_RANK) or taken by rule, and the norm is measured from the truncation', (t) => {
  const low = schemaAtRank(SCHEMA, 2);
  const announced = specs(low);
  t.like(checkAnnouncedSchema(SCHEMA, announced, 'fedit'), {
    code: 'UPDATE_RANK',
    field: 'envelope.tensorSchema',
  });
  t.like(checkAnnouncedSchema(SCHEMA, announced), { code: 'UPDATE_RANK' });
  t.regex(checkAnnouncedSchema(SCHEMA, announced)!.message, /this federation's rule aggregates only/);
  t.is(checkAnnouncedSchema(SCHEMA, announced, 'product-svd'), undefined);
  const mixed = specs(shapesWith({ [A_Q]: [2, 6], [B_Q]: [8, 2] }));
  t.like(checkAnnouncedSchema(SCHEMA, mixed, 'product-svd'), { code: 'UPDATE_RANK' });
  t.like(checkAnnouncedSchema(SCHEMA, specs(schemaAtRank(SCHEMA, 6)), 'product-svd'), {
    code: 'UPDATE_SCHEMA',
  });

  const start = truncateAdapterRank(GLOBAL, SCHEMA, 2);
  const context = (maxUpdateNorm: number) => ({
    schema: announced,
    global: GLOBAL,
    globalSchema: SCHEMA,
    maxUpdateNorm,
  });
  t.true(admitUpdateTensors(context(1e-30), tensors(start, low)).ok, 'no move from the truncation: norm 0');
  const moved = trainedAt(2, 7, 0.1);
  const distance = updateNorm(moved, start);
  t.true(admitUpdateTensors(context(distance), tensors(moved, low)).ok);
  const refused = admitUpdateTensors(context(distance * 0.99), tensors(moved, low));
  t.like(refused, { ok: false, refusal: { code: 'UPDATE_NORM' } });
});

/** scale * B A of one module, [out x in] in binary64. */
function delta(values: TensorValues, a: string, b: string, rank: number, scale: number) {
  const A = values.get(a)!;
  const B = values.get(b)!;
  const inF = A.length / rank;
  const outF = B.length / rank;
  const d = new Float64Array(outF * inF);
  for (let i = 0; i < outF; i++)
    for (let j = 0; j < inF; j++) {
      let s = 0;
      for (let k = 0; k < rank; k++) s += B[i * rank + k] * A[k * inF + j];
      d[i * inF + j] = scale * s;
    }
  return d;
}

test('scales agree: a rank-2 participant that did not move, aggregated at alpha / 2, gives back its delta at alpha / 4', (t) => {
  const start = truncateAdapterRank(GLOBAL, SCHEMA, 2);
  const got = aggregateRound({
    rule: 'product-svd',
    config: { rank: 4, alpha: '8' },
    schema: SCHEMA,
    global: GLOBAL,
    contributions: [{ participant: 'p-low', exampleCount: 3, update: start }],
  }).adapter;
  for (const [a, b] of [
    [A_D, B_D],
    [A_Q, B_Q],
  ]) {
    const trained = delta(start, a, b, 2, ALPHA / 2); // what the participant's LoRA adds (PEFT)
    const aggregated = delta(got, a, b, 4, ALPHA / 4); // what the new global adapter adds
    const top2 = delta(
      new Map([
        [a, GLOBAL.get(a)!.slice(0, 2 * (GLOBAL.get(a)!.length / 4))],
        [
          b,
          Float32Array.from(
            { length: GLOBAL.get(b)!.length / 2 },
            (_, i) => GLOBAL.get(b)![Math.floor(i / 2) * 4 + (i % 2)],
          ),
        ],
      ]),
      a,
      b,
      2,
      ALPHA / 4,
    ); // the top two components of the global delta, at the global scale
    const size = Math.max(...trained.map(Math.abs));
    trained.forEach((v, i) => {
      if (Math.abs(v - aggregated[i]) > 1e-5 * size || Math.abs(v - top2[i]) > 1e-5 * size)
        t.fail(`${a}: element ${i}: trained ${v}, aggregated ${aggregated[i]}, top two ${top2[i]}`);
    });
  }
  t.pass();
});
