// Norm clipping toward the global adapter with a bound set by the round's median norm: the step
// that stops one oversized update from dragging the global adapter, with arithmetic fixed to the
// bit so the audit recomputes it.

import test from 'ava';
import {
  adaptiveClipBound,
  AggregationError,
  clipScale,
  clipToward,
  updateNorm,
  type AggregationErrorCode,
  type TensorValues,
} from '@fedit/shared';

const A = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
const B = 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight';

const isAggregationError = (code: AggregationErrorCode, text?: RegExp) => (err: unknown) =>
  err instanceof AggregationError && err.code === code && (text === undefined || text.test(err.message));

/** Deterministic pseudo-random values in [-0.5, 0.5). */
function random(seed: number): () => number {
  let state = seed * 2654435761 + 1;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31 - 0.5;
  };
}

/** The binary64 L2 norm of update - global, for values the float32 updateNorm cannot take. */
function norm64(update: ReadonlyMap<string, Float64Array>, global: TensorValues): number {
  let squares = 0;
  for (const [name, values] of update) {
    const base = global.get(name)!;
    for (let i = 0; i < values.length; i++) squares += (values[i] - base[i]) ** 2;
  }
  return Math.sqrt(squares);
}

test('the adaptive bound is the multiplier times the median norm: the middle value for odd K, the mean of the two middle values for even K', (t) => {
  t.is(adaptiveClipBound([3, 1, 2], 1.5), 3);
  t.is(adaptiveClipBound([4, 1, 3, 2], 1), 2.5);
  t.is(adaptiveClipBound([7], 2), 14);
  // Binary64 throughout: 0.1 + 0.2 rounds up, and the halving keeps that bit.
  t.is(adaptiveClipBound([0.2, 0.1], 1), 0.15000000000000002);
  // The norms are not reordered in place.
  const norms = [5, 0, 9, 1];
  adaptiveClipBound(norms, 1);
  t.deepEqual(norms, [5, 0, 9, 1]);
});

test('the clip scale is min(1, bound / norm), and 1 for an update equal to the global adapter', (t) => {
  t.is(clipScale(2, 1), 0.5);
  t.is(clipScale(3, 1), 0.3333333333333333);
  t.is(clipScale(1, 2), 1);
  t.is(clipScale(2, 2), 1);
  t.is(clipScale(3, 0), 0);
  t.is(clipScale(0, 0), 1);
  t.is(clipScale(0, 5), 1);
});

test('clipping moves each value toward the global one: g + scale * (x - g) in binary64, tensors in UTF-8 name order', (t) => {
  const global = new Map([
    [B, Float32Array.from([1, -1])],
    [A, Float32Array.from([0, 2, 4])],
  ]);
  const update = new Map([
    [B, Float32Array.from([3, -1])],
    [A, Float32Array.from([-4, 2, 5])],
  ]);
  const clipped = clipToward(update, global, 0.25);
  t.deepEqual([...clipped.keys()], [A, B]);
  t.deepEqual(clipped.get(A), Float64Array.from([-1, 2, 4.25]));
  t.deepEqual(clipped.get(B), Float64Array.from([1.5, -1]));
  // Scale 0 lands on the global adapter.
  t.deepEqual(clipToward(update, global, 0).get(A), Float64Array.from([0, 2, 4]));
  // The arithmetic is three roundings, not a fused multiply-add and not float32.
  const g = Math.fround(0.1);
  const x = Math.fround(0.7);
  const one = clipToward(new Map([[A, Float32Array.of(x)]]), new Map([[A, Float32Array.of(g)]]), 0.3);
  t.is(one.get(A)![0], g + 0.3 * (x - g));
  t.not(one.get(A)![0], Math.fround(g + 0.3 * (x - g)));
});

test('an update within the bound passes through widened, bit for bit, into a fresh array', (t) => {
  const next = random(7);
  const values = Float32Array.from({ length: 64 }, () => next() * 1e-3);
  const global = new Map([[A, Float32Array.from({ length: 64 }, () => next())]]);
  const update = new Map([[A, values]]);
  const clipped = clipToward(update, global, clipScale(updateNorm(update, global), 1e9));
  t.deepEqual(clipped.get(A), Float64Array.from(values));
  clipped.get(A)!.fill(0);
  t.not(values[0], 0);
});

test('with three honest updates of norm ~0.65 and one scaled x1000, the median bound clips the poisoned one to the honest norms and the mean moves like an honest step', (t) => {
  const next = random(11);
  const size = { [A]: 8 * 64, [B]: 64 * 8 };
  const global = new Map(
    Object.entries(size).map(([name, n]) => [name, Float32Array.from({ length: n }, next)]),
  );
  /** global + delta, where delta is random with L2 norm `norm`. */
  const step = (norm: number) => {
    const deltas = new Map(
      Object.entries(size).map(([name, n]) => [name, Float64Array.from({ length: n }, next)]),
    );
    let squares = 0;
    for (const d of deltas.values()) for (const v of d) squares += v * v;
    const factor = norm / Math.sqrt(squares);
    return new Map([...deltas].map(([name, d]) => [name, d.map((v) => v * factor)]));
  };
  const apply = (delta: Map<string, Float64Array>, times: number) =>
    new Map([...global].map(([name, g]) => [name, g.map((v, i) => v + times * delta.get(name)![i])]));
  const honestDeltas = [step(0.64), step(0.65), step(0.66)];
  const updates = [...honestDeltas.map((d) => apply(d, 1)), apply(honestDeltas[1], 1000)];
  const norms = updates.map((u) => updateNorm(u, global));
  t.true(norms[3] > 600, `poisoned norm ${norms[3]}`);

  const bound = adaptiveClipBound(norms, 1);
  const honestNorms = norms.slice(0, 3);
  t.true(bound >= Math.min(...honestNorms) && bound <= Math.max(...honestNorms), `bound ${bound}`);
  const clipped = updates.map((u, k) => clipToward(u, global, clipScale(norms[k], bound)));
  // The poisoned update now has the bound's norm, to rounding (the float32 inputs were clipped in binary64).
  t.true(
    Math.abs(norm64(clipped[3], global) - bound) <= bound * 1e-9,
    `${norm64(clipped[3], global)} vs ${bound}`,
  );
  // An honest update under the bound is untouched.
  const smallest = norms.indexOf(Math.min(...honestNorms));
  t.deepEqual(clipped[smallest].get(A), Float64Array.from(updates[smallest].get(A)!));

  // The plain mean of the four moves the global adapter ~250 honest steps unclipped, at most one clipped.
  const meanStep = (values: readonly ReadonlyMap<string, ArrayLike<number>>[]) => {
    const mean = new Map(
      [...global.keys()].map((name) => [
        name,
        Float64Array.from(
          values[0].get(name)!,
          (_, i) => values.reduce((s, u) => s + u.get(name)![i], 0) / values.length,
        ),
      ]),
    );
    return norm64(mean, global);
  };
  t.true(meanStep(updates) > 200 * 0.65, `unclipped mean step ${meanStep(updates)}`);
  t.true(meanStep(clipped) <= bound * (1 + 1e-9), `clipped mean step ${meanStep(clipped)}`);
});

test('refuses a bound from no norms, a negative or non-finite norm, or a multiplier that is not positive', (t) => {
  t.true(isAggregationError('AGGREGATION_EMPTY')(t.throws(() => adaptiveClipBound([], 1))));
  t.true(
    isAggregationError(
      'AGGREGATION_CONFIG',
      /norms\[1\] is -1/,
    )(t.throws(() => adaptiveClipBound([1, -1], 1))),
  );
  t.true(
    isAggregationError(
      'AGGREGATION_CONFIG',
      /norms\[0\] is NaN/,
    )(t.throws(() => adaptiveClipBound([NaN], 1))),
  );
  for (const multiplier of [0, -2, Infinity, NaN]) {
    t.true(
      isAggregationError(
        'AGGREGATION_CONFIG',
        /clip multiplier/,
      )(t.throws(() => adaptiveClipBound([1], multiplier))),
    );
  }
  t.true(
    isAggregationError('AGGREGATION_CONFIG', /^norm is Infinity/)(t.throws(() => clipScale(Infinity, 1))),
  );
  t.true(isAggregationError('AGGREGATION_CONFIG', /^bound is -1/)(t.throws(() => clipScale(1, -1))));
});

test('refuses to clip an update that does not match the global adapter, naming the tensor', (t) => {
  const global = new Map([
    [A, Float32Array.of(0, 0)],
    [B, Float32Array.of(0)],
  ]);
  const lacking = new Map([[A, Float32Array.of(1, 1)]]);
  t.true(
    isAggregationError(
      'AGGREGATION_TENSOR_NAME',
      /lacks tensor .*lora_B/,
    )(t.throws(() => clipToward(lacking, global, 0.5))),
  );
  const extra = new Map([...global, ['extra.weight', Float32Array.of(1)]]);
  t.true(
    isAggregationError(
      'AGGREGATION_TENSOR_NAME',
      /has tensor extra\.weight/,
    )(t.throws(() => clipToward(extra, global, 0.5))),
  );
  const short = new Map([
    [A, Float32Array.of(1)],
    [B, Float32Array.of(1)],
  ]);
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /lora_A.* has 1 values, the global adapter's 2/,
    )(t.throws(() => clipToward(short, global, 0.5))),
  );
  const nan = new Map([
    [A, Float32Array.of(1, NaN)],
    [B, Float32Array.of(1)],
  ]);
  // Even at scale 1, where nothing is recomputed.
  t.true(
    isAggregationError(
      'AGGREGATION_NOT_FINITE',
      /^update: tensor .*lora_A\.weight holds NaN at flat index 1/,
    )(t.throws(() => clipToward(nan, global, 1))),
  );
  for (const scale of [-0.1, 1.5, NaN]) {
    t.true(
      isAggregationError(
        'AGGREGATION_CONFIG',
        /clip scale/,
      )(t.throws(() => clipToward(global, global, scale))),
    );
  }
});
