// Batches for the step graphs: sequence buckets, optional packing, determinism, and packed rows
// checked through kernels' own makeBatch (what the graph will be fed): no token attends to, or is
// trained to predict, a token of another example.

import test from 'ava';
import { IGNORE_INDEX, makeBatch, PRESETS, type TokenRow } from '@fedit/kernels';
import { DatasetError, planBatches, sequenceBuckets, type BatchPlan } from '../src/core/data/index.ts';
import { seededRandom } from '../src/core/data/random.ts';

/** Rows of varied lengths; each token encodes (row, position) so rows can be recognised after packing. */
function rows(count: number, maxLength: number, seed = 1): TokenRow[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, r) => {
    // mostly short, a few long: the shape of instruction data
    const n = 1 + Math.floor(random() ** 3 * maxLength);
    const inputIds = Array.from({ length: n }, (_, p) => r * 10_000 + p);
    const prompt = Math.floor(n / 2);
    return { inputIds, labels: inputIds.map((id, p) => (p < prompt ? IGNORE_INDEX : id)) };
  });
}

/** Every example index, once, over all batches. */
function exampleIndices(plan: BatchPlan): number[] {
  return plan.batches.flatMap((b) => b.examples.flat()).sort((a, b) => a - b);
}

test('sequence buckets are powers of two up to cutoffLen, rounded up to a multiple of 8', (t) => {
  t.deepEqual(sequenceBuckets(512), [16, 32, 64, 128, 256, 512]);
  t.deepEqual(sequenceBuckets(300), [16, 32, 64, 128, 256, 304]);
  t.deepEqual(sequenceBuckets(100, { min: 32 }), [32, 64, 104]);
  t.deepEqual(sequenceBuckets(5), [8]);
  t.deepEqual(sequenceBuckets(20, { min: 1, multiple: 1 }), [1, 2, 4, 8, 16, 20]);
  t.is(t.throws(() => sequenceBuckets(0), { instanceOf: DatasetError })?.code, 'DATASET_OPTIONS');
});

test('each batch gets the smallest bucket that fits its longest row, and every example appears once', (t) => {
  const input = rows(203, 512);
  const buckets = sequenceBuckets(512);
  const plan = planBatches(input, { batchSize: 8, buckets, seed: 3 });
  t.deepEqual(
    exampleIndices(plan),
    input.map((_, i) => i),
  );
  for (const b of plan.batches) {
    t.true(b.rows.length >= 1 && b.rows.length <= 8);
    const longest = Math.max(...b.rows.map((r) => r.inputIds.length));
    t.true(longest <= b.seq);
    t.is(
      b.seq,
      buckets.find((s) => s >= longest)!,
    );
    b.rows.forEach((row, k) => {
      t.is(row, input[b.examples[k][0]]);
      t.is(row.segments, undefined);
    });
  }
  // at most one batch is not full
  t.true(plan.batches.filter((b) => b.rows.length < 8).length <= 1);
  const { stats } = plan;
  t.is(
    stats.realTokens,
    input.reduce((s, r) => s + r.inputIds.length, 0),
  );
  t.is(
    stats.slotTokens,
    plan.batches.reduce((s, b) => s + 8 * b.seq, 0),
  );
  t.is(stats.paddingEfficiency, stats.realTokens / stats.slotTokens);
  t.true(stats.paddingEfficiency > stats.unbucketedEfficiency);
  t.is(
    stats.byBucket.reduce((s, b) => s + b.batches, 0),
    plan.batches.length,
  );
});

test('batches are deterministic for a seed and change with it', (t) => {
  const input = rows(100, 256);
  const options = { batchSize: 4, buckets: sequenceBuckets(256), seed: 'federation-1' };
  const order = (p: BatchPlan) => p.batches.map((b) => b.examples.flat());
  t.deepEqual(order(planBatches(input, options)), order(planBatches(input, options)));
  t.notDeepEqual(
    order(planBatches(input, options)),
    order(planBatches(input, { ...options, seed: 'federation-2' })),
  );
  const packed = { ...options, pack: true };
  t.deepEqual(order(planBatches(input, packed)), order(planBatches(input, packed)));
  // no shuffle: the examples of each bucket come in input order
  const buckets = sequenceBuckets(256);
  const bucketOf = (i: number) => buckets.find((b) => b >= input[i].inputIds.length);
  const sequence = planBatches(input, { ...options, shuffle: false }).batches.flatMap((b) =>
    b.examples.flat(),
  );
  for (const bucket of buckets) {
    const ids = sequence.filter((i) => bucketOf(i) === bucket);
    t.deepEqual(
      ids,
      [...ids].sort((x, y) => x - y),
    );
  }
});

test('packing puts every example in exactly one segment of one row, within the pack length', (t) => {
  const input = rows(300, 256, 5);
  const plan = planBatches(input, { batchSize: 4, buckets: sequenceBuckets(256), seed: 9, pack: true });
  t.deepEqual(
    exampleIndices(plan),
    input.map((_, i) => i),
  );
  for (const b of plan.batches) {
    b.rows.forEach((row, k) => {
      t.true(row.inputIds.length <= b.seq);
      t.true(row.inputIds.length <= 256);
      t.is(row.labels.length, row.inputIds.length);
      t.is(row.segments!.length, row.inputIds.length);
      // the row is its examples one after another, segment k holding example k, unchanged
      const members = b.examples[k];
      let offset = 0;
      members.forEach((i, segment) => {
        const ex = input[i];
        const span = row.inputIds.slice(offset, offset + ex.inputIds.length);
        t.deepEqual(span, ex.inputIds);
        t.deepEqual(row.labels.slice(offset, offset + ex.inputIds.length), ex.labels);
        t.true(row.segments!.slice(offset, offset + ex.inputIds.length).every((s) => s === segment));
        offset += ex.inputIds.length;
      });
      t.is(offset, row.inputIds.length);
    });
  }
  const unpacked = planBatches(input, { batchSize: 4, buckets: sequenceBuckets(256), seed: 9 });
  t.true(plan.stats.rows < input.length);
  t.true(plan.stats.batches < unpacked.stats.batches);
  t.true(plan.stats.paddingEfficiency > unpacked.stats.paddingEfficiency);
  t.true(plan.stats.paddingEfficiency > 0.8, `packed efficiency ${plan.stats.paddingEfficiency}`);
});

test('packed segments never attend to or predict across examples in the batch the graph is fed', (t) => {
  const cfg = PRESETS.tiny;
  // small token ids so the rows fit the tiny model's vocabulary
  const input = rows(40, 48, 11).map((r, i) => ({
    inputIds: r.inputIds.map((_, p) => (i * 7 + p) % cfg.vocabSize),
    labels: r.labels.map((l, p) => (l === IGNORE_INDEX ? l : (i * 7 + p) % cfg.vocabSize)),
  }));
  const plan = planBatches(input, { batchSize: 3, buckets: sequenceBuckets(64), seed: 2, pack: true });
  let checkedRows = 0;
  const wrong: string[] = [];
  for (const b of plan.batches) {
    const tensors = makeBatch(cfg, b.rows, 3, b.seq);
    const bias = tensors.attention_bias.data as Float32Array;
    const mask = tensors.loss_mask.data as Float32Array;
    const targets = tensors.target_ids.data as Int32Array;
    b.rows.forEach((row, r) => {
      const seg = row.segments!;
      const n = row.inputIds.length;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < b.seq; j++) {
          const open = bias[(r * b.seq + i) * b.seq + j] === 0;
          if (open !== (j <= i && j < n && seg[j] === seg[i]))
            wrong.push(`attention row ${r} query ${i} key ${j}`);
        }
        // a target counts only within the example: the next token of the same segment, trained label
        const expected = i + 1 < n && seg[i + 1] === seg[i] && row.labels[i + 1] !== IGNORE_INDEX;
        if ((mask[r * b.seq + i] === 1) !== expected) wrong.push(`loss mask row ${r} position ${i}`);
        if (expected && targets[r * b.seq + i] !== row.labels[i + 1])
          wrong.push(`target row ${r} position ${i}`);
      }
      checkedRows++;
    });
    // trained targets = Σ over examples of trained labels after each example's first token
    const members = b.examples.flat();
    const trainable = members.reduce(
      (s, i) => s + input[i].labels.slice(1).filter((l) => l !== IGNORE_INDEX).length,
      0,
    );
    t.is(tensors.targetTokens, trainable);
  }
  t.deepEqual(wrong, []);
  t.true(checkedRows > 0);
});

test('rows longer than the largest bucket, and bad options, are refused', (t) => {
  const input = rows(10, 100);
  input.push({ inputIds: new Array(200).fill(1), labels: new Array(200).fill(1) });
  const err = t.throws(() => planBatches(input, { batchSize: 2, buckets: [64, 128], seed: 1 }), {
    instanceOf: DatasetError,
  });
  t.regex(err?.message ?? '', /row 10 has 200 tokens, more than the largest sequence bucket \(128\)/);
  t.throws(() => planBatches(rows(3, 10), { batchSize: 0, buckets: [16], seed: 1 }), {
    instanceOf: DatasetError,
  });
  t.throws(() => planBatches(rows(3, 10), { batchSize: 2, buckets: [], seed: 1 }), {
    instanceOf: DatasetError,
  });
  t.throws(
    () => planBatches(rows(3, 10), { batchSize: 2, buckets: [16], seed: 1, pack: true, packLength: 32 }),
    {
      instanceOf: DatasetError,
    },
  );
});
