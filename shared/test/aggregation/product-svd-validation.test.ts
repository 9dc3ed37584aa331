// Product-space aggregation refuses what it cannot aggregate, naming the update and the tensor,
// and pairs an adapter's tensors into LoRA modules by their PEFT names.

import test, { type ExecutionContext } from 'ava';
import {
  AggregationError,
  loraModules,
  productSvd,
  productSvdAdapter,
  truncateAdapterRank,
  type AggregationErrorCode,
  type FactorSplit,
} from '@fedit/shared';
import { A_D, A_Q, B_Q, SCHEMA, update } from './lora-fixtures.ts';

function throwsAggregation(
  t: ExecutionContext,
  fn: () => unknown,
  code: AggregationErrorCode,
  message: RegExp,
) {
  const error = t.throws(fn, { instanceOf: AggregationError, message });
  t.is(error?.code, code);
}

test('updates that do not fit are refused naming the update and the tensor', (t) => {
  const o = { rank: 4, alpha: 8 };
  const ok = update(2, 1);
  const without = new Map(ok);
  without.delete(B_Q);
  throwsAggregation(
    t,
    () => productSvdAdapter([{ values: without, weight: 1, label: 'p-7' }], SCHEMA, o),
    'AGGREGATION_TENSOR_NAME',
    /^p-7: lacks tensor .*q_proj\.lora_B/,
  );
  const extra = new Map(ok).set(
    'base_model.model.model.layers.1.mlp.up_proj.lora_A.weight',
    new Float32Array(4),
  );
  throwsAggregation(
    t,
    () => productSvdAdapter([{ values: extra, weight: 1 }], SCHEMA, o),
    'AGGREGATION_TENSOR_NAME',
    /^update 0: has tensor .*up_proj/,
  );
  const ragged = new Map(ok).set(A_Q, new Float32Array(7));
  throwsAggregation(
    t,
    () =>
      productSvdAdapter(
        [
          { values: ok, weight: 1 },
          { values: ragged, weight: 1 },
        ],
        SCHEMA,
        o,
      ),
    'AGGREGATION_SHAPE',
    /^update 1: tensor .*q_proj\.lora_A\.weight has 7 values/,
  );
  const tooHigh = update(5, 1);
  throwsAggregation(
    t,
    () => productSvdAdapter([{ values: tooHigh, weight: 1 }], SCHEMA, o),
    'AGGREGATION_SHAPE',
    /rank r in 1\.\.4/,
  );
  const mismatched = new Map(ok).set(B_Q, new Float32Array(8 * 3));
  throwsAggregation(
    t,
    () => productSvdAdapter([{ values: mismatched, weight: 1 }], SCHEMA, o),
    'AGGREGATION_SHAPE',
    /q_proj\.lora_B\.weight has 24 values; its shape \[8, 2\]/,
  );
  const nan = new Map(ok).set(
    A_D,
    ok.get(A_D)!.map((x, i) => (i === 3 ? NaN : x)),
  );
  throwsAggregation(
    t,
    () => productSvdAdapter([{ values: nan, weight: 1 }], SCHEMA, o),
    'AGGREGATION_NOT_FINITE',
    /down_proj\.lora_A\.weight holds NaN at flat index 3/,
  );
  throwsAggregation(
    t,
    () => productSvdAdapter([{ values: ok, weight: 0 }], SCHEMA, o),
    'AGGREGATION_WEIGHT',
    /update 0: weight must be a positive/,
  );
  throwsAggregation(t, () => productSvdAdapter([], SCHEMA, o), 'AGGREGATION_EMPTY', /no update/);
  throwsAggregation(
    t,
    () => productSvdAdapter([{ values: ok, weight: 1 }], SCHEMA, { rank: 8, alpha: 8 }),
    'AGGREGATION_SHAPE',
    /has rank 4; the federation's rank is 8/,
  );
  throwsAggregation(
    t,
    () => productSvdAdapter([{ values: ok, weight: 1 }], SCHEMA, { rank: 4, alpha: 0 }),
    'AGGREGATION_CONFIG',
    /alpha must be/,
  );
  throwsAggregation(
    t,
    () =>
      productSvdAdapter([{ values: ok, weight: 1 }], SCHEMA, {
        rank: 4,
        alpha: 8,
        split: 'even' as FactorSplit,
      }),
    'AGGREGATION_CONFIG',
    /split must be one of balanced, orthonormal-a, got "even"/,
  );
  throwsAggregation(
    t,
    () => truncateAdapterRank(ok, SCHEMA, 2),
    'AGGREGATION_SHAPE',
    /global adapter: tensor/,
  );
  throwsAggregation(
    t,
    () =>
      productSvd(
        [{ a: new Float32Array(3), b: new Float32Array(2), rank: 1, scale: 1, weight: 1 }],
        2,
        2,
        1,
        1,
      ),
    'AGGREGATION_SHAPE',
    /pairs\[0\]\.a has 3 values/,
  );
});

test('loraModules pairs factors by PEFT module name and refuses tensors that are not A/B pairs', (t) => {
  t.deepEqual(
    loraModules(SCHEMA).map((m) => [m.modulePath, m.rank, m.inFeatures, m.outFeatures]),
    [
      ['model.layers.0.mlp.down_proj', 4, 10, 6],
      ['model.layers.0.self_attn.q_proj', 4, 6, 8],
    ],
  );
  throwsAggregation(
    t,
    () => loraModules(new Map([['model.embed_tokens.weight', [4, 4]]])),
    'AGGREGATION_TENSOR_NAME',
    /model\.embed_tokens\.weight is not a PEFT LoRA factor/,
  );
  throwsAggregation(
    t,
    () => loraModules(new Map([[A_Q, [4, 6]]])),
    'AGGREGATION_TENSOR_NAME',
    /has no lora_B partner/,
  );
  throwsAggregation(
    t,
    () =>
      loraModules(
        new Map([
          [A_Q, [4, 6]],
          [B_Q, [8, 3]],
        ]),
      ),
    'AGGREGATION_SHAPE',
    /\[8, 3\] does not match/,
  );
});
