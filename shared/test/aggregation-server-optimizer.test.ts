// The FedOpt server step (server-optimizer.ts): every kind against a reimplementation written from
// the file header's formulas alone (binary64 arithmetic, Math.fround where the header rounds to
// float32), over several rounds with the state carried; a case pinned to the float32 bits that the
// header's numpy statement gives; the state's shape checks; and yogi's sign(0) = 0.
//
// The pinned bits come from Python, following the header's numpy lines (f32 = np.float32):
//   x = f32([0.5, -0.25, 1, 0]); m = v = zeros(4, f32); lr, b1, b2, tau = 0.1, 0.9, 0.99, 0.001
//   for t in ([0.625, -0.5, 1, 0.1], [0.5, -0.125, 1.25, -0.3]):      # two rounds, float64 targets
//       D = t - x.astype(float64)
//       sgd:  x = f32(x + lr*D)
//       avgm: m = f32(b1*m + D); x = f32(x + lr*m)
//       else: m = f32(b1*m + (1-b1)*D)
//             v = f32(v + D*D) | f32(v - (1-b2)*D*D*np.sign(v - D*D)) | f32(b2*v + (1-b2)*D*D)
//             x = f32(x + lr*m / (np.sqrt(v) + tau))
//   print([hex(u) for u in x.view(np.uint32)]), the same for m and v

import test from 'ava';
import {
  AggregationError,
  serverStateTensors,
  serverStep,
  type AdapterSchema,
  type AggregationErrorCode,
  type ServerOptimizerSettings,
  type TensorValues,
} from '@fedit/shared';

const A = 'q.lora_A';
const B = 'q.lora_B';
const schema: AdapterSchema = new Map([
  [A, [1, 3]],
  [B, [3, 1]],
]);
/** Large enough (512 values) that a different order of operations shows in some float32 bit. */
const wideSchema: AdapterSchema = new Map([
  [A, [4, 64]],
  [B, [64, 4]],
]);
const KINDS = ['sgd', 'avgm', 'adam', 'yogi', 'adagrad'] as const;

const isAggregationError = (code: AggregationErrorCode, text?: RegExp) => (err: unknown) =>
  err instanceof AggregationError && err.code === code && (text === undefined || text.test(err.message));

const settingsOf = (kind: ServerOptimizerSettings['kind'], lr = 0.1): ServerOptimizerSettings => ({
  kind,
  lr,
  beta1: 0.9,
  beta2: 0.99,
  tau: 1e-3,
});

/** The bits of float32 values, for comparisons that see -0 and every last bit. */
const bits = (values: Float32Array) => [...new Uint32Array(Float32Array.from(values).buffer)];

/** Deterministic pseudo-random values in [-0.5, 0.5). */
function random(seed: number): () => number {
  let state = seed * 2654435761 + 1;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31 - 0.5;
  };
}

/**
 * One element's step, written from the header's formulas alone (not from the implementation):
 * binary64 operations in the written order, Math.fround where the header stores a float32.
 */
function referenceStep(s: ServerOptimizerSettings, x: number, target: number, m: number, v: number) {
  const d = target - x;
  if (s.kind === 'sgd') return { x: Math.fround(x + s.lr * d), m: 0, v: 0 };
  if (s.kind === 'avgm') {
    const m1 = Math.fround(s.beta1 * m + d);
    return { x: Math.fround(x + s.lr * m1), m: m1, v: 0 };
  }
  const m1 = Math.fround(s.beta1 * m + (1 - s.beta1) * d);
  const v1 =
    s.kind === 'adagrad'
      ? Math.fround(v + d * d)
      : s.kind === 'yogi'
        ? Math.fround(v - (1 - s.beta2) * (d * d) * Math.sign(v - d * d))
        : Math.fround(s.beta2 * v + (1 - s.beta2) * (d * d));
  return { x: Math.fround(x + (s.lr * m1) / (Math.sqrt(v1) + s.tau)), m: m1, v: v1 };
}

/** Runs `rounds` server steps of both implementations from the same inputs, state carried. */
function runBoth(kind: ServerOptimizerSettings['kind'], seed: number, rounds: number) {
  const settings = settingsOf(kind, 0.5);
  const next = random(seed);
  let global: TensorValues = new Map(
    [...wideSchema].map(([name, [r, c]]) => [name, Float32Array.from({ length: r * c }, next)]),
  );
  let state: TensorValues | undefined;
  const ref = new Map(
    [...global].map(([name, x]) => [name, { x: [...x], m: x.map(() => 0), v: x.map(() => 0) }]),
  );
  for (let round = 0; round < rounds; round++) {
    // A binary64 target a little away from the global adapter, as a rule's combine gives it.
    const target = new Map(
      [...global].map(([name, x]) => [name, Float64Array.from(x, (xi) => xi + next() / 7)]),
    );
    const step = serverStep(settings, wideSchema, global, target, state);
    for (const [name, r] of ref) {
      const t = target.get(name)!;
      r.x.forEach((xi, i) => {
        const out = referenceStep(settings, xi, t[i], r.m[i], r.v[i]);
        r.x[i] = out.x;
        r.m[i] = out.m;
        r.v[i] = out.v;
      });
    }
    global = step.adapter;
    state = step.state;
  }
  return { global, state, ref };
}

for (const kind of KINDS) {
  test(`${kind}: three rounds with the state carried equal the header's formulas to the bit`, (t) => {
    const { global, state, ref } = runBoth(kind, 11, 3);
    for (const [name, r] of ref) {
      t.deepEqual(bits(global.get(name)!), bits(Float32Array.from(r.x)), `${name}: the adapter`);
      if (kind !== 'sgd')
        t.deepEqual(bits(state!.get(`m:${name}`)!), bits(Float32Array.from(r.m)), `${name}: m`);
      if (kind !== 'sgd' && kind !== 'avgm')
        t.deepEqual(bits(state!.get(`v:${name}`)!), bits(Float32Array.from(r.v)), `${name}: v`);
    }
    const expectedKeys =
      kind === 'sgd'
        ? undefined
        : kind === 'avgm'
          ? [`m:${A}`, `m:${B}`]
          : [`m:${A}`, `v:${A}`, `m:${B}`, `v:${B}`];
    t.deepEqual(state && [...state.keys()], expectedKeys, 'the state tensors the kind keeps');
  });
}

test('the state changes the step: the same round from another state gives another adapter', (t) => {
  // Guards the carried-state test against an implementation that ignores its state input.
  for (const kind of ['avgm', 'adam', 'yogi', 'adagrad'] as const) {
    const first = runBoth(kind, 3, 1);
    const target = new Map([...first.global].map(([n, x]) => [n, Float64Array.from(x, (xi) => xi + 0.01)]));
    const fromState = serverStep(settingsOf(kind), wideSchema, first.global, target, first.state);
    const fromZeros = serverStep(settingsOf(kind), wideSchema, first.global, target, undefined);
    t.notDeepEqual(bits(fromState.adapter.get(B)!), bits(fromZeros.adapter.get(B)!), kind);
  }
});

test('a pinned case: two rounds of every kind give the float32 bits of the numpy statement in this file', (t) => {
  const pinSchema: AdapterSchema = new Map([['w', [4]]]);
  const expected = {
    sgd: { x: [0x3f02e148, 0xbe851eb8, 0x3f833333, 0xbcac0831] },
    avgm: {
      x: [0x3f05c28f, 0xbe90a3d7, 0x3f833333, 0xbc449ba6],
      m: [0x3dccccce, 0xbd999999, 0x3e800000, 0xbe6147ae],
    },
    adagrad: {
      x: [0x3f049e0b, 0xbe86b771, 0x3f814660, 0x3b4fa9c7],
      m: [0x3c2810e5, 0xbc138574, 0x3ccccccd, 0xbcb42495],
      v: [0x3c80ce67, 0x3da54d82, 0x3d800000, 0x3dd92ac7],
    },
    yogi: {
      x: [0x3f1ac82e, 0xbeb1cdb8, 0x3f8c4ec5, 0x3c9494c3],
      m: [0x3b027715, 0xb9c9a620, 0x3ccccccd, 0xbcf68136],
      v: [0x397dbd0e, 0x3a9206aa, 0x3a23d70a, 0x3ad565f2],
    },
    adam: {
      x: [0x3f1aca95, 0xbeb1ce1f, 0x3f8c4ec5, 0x3c946702],
      m: [0x3b027715, 0xb9c9a620, 0x3ccccccd, 0xbcf68136],
      v: [0x397c19a0, 0x3a9134f3, 0x3a23d70a, 0x3ad54464],
    },
  } as const;
  for (const kind of KINDS) {
    let global: TensorValues = new Map([['w', Float32Array.of(0.5, -0.25, 1, 0)]]);
    let state: TensorValues | undefined;
    for (const t64 of [
      [0.625, -0.5, 1, 0.1],
      [0.5, -0.125, 1.25, -0.3],
    ]) {
      const step = serverStep(
        settingsOf(kind),
        pinSchema,
        global,
        new Map([['w', Float64Array.from(t64)]]),
        state,
      );
      global = step.adapter;
      state = step.state;
    }
    const pin: { x: readonly number[]; m?: readonly number[]; v?: readonly number[] } = expected[kind];
    t.deepEqual(bits(global.get('w')!), [...pin.x], `${kind}: x`);
    t.deepEqual(state?.get('m:w') && bits(state.get('m:w')!), pin.m && [...pin.m], `${kind}: m`);
    t.deepEqual(state?.get('v:w') && bits(state.get('v:w')!), pin.v && [...pin.v], `${kind}: v`);
  }
});

test("yogi's sign(0) is 0: where v equals D^2 the second moment stays as it is", (t) => {
  const w: AdapterSchema = new Map([['w', [3]]]);
  const global = new Map([['w', Float32Array.of(1, 1, 1)]]);
  // D = 0.5, -0.5 and 0.25: D^2 = 0.25, 0.25 and 0.0625, all exact.
  const target = new Map([['w', Float64Array.of(1.5, 0.5, 1.25)]]);
  const state = new Map([
    ['m:w', Float32Array.of(0, 0, 0)],
    ['v:w', Float32Array.of(0.25, 0.25, 0.5)],
  ]);
  const step = serverStep(settingsOf('yogi'), w, global, target, state);
  const v = step.state!.get('v:w')!;
  t.is(v[0], 0.25, 'v = D^2: unchanged (sign(0) = 0, not +1 or -1)');
  t.is(v[1], 0.25, 'the sign of D does not matter, only D^2');
  // v > D^2: v decreases by (1 - beta2) * D^2, rounded to float32.
  t.is(v[2], Math.fround(0.5 - (1 - 0.99) * 0.0625));
  // From zero state with D = 0, v stays 0 and the step is 0 (no 0/0).
  const still = serverStep(
    settingsOf('yogi'),
    w,
    global,
    new Map([['w', Float64Array.of(1, 1, 1)]]),
    undefined,
  );
  t.deepEqual([...still.adapter.get('w')!], [1, 1, 1]);
  t.deepEqual([...still.state!.get('v:w')!], [0, 0, 0]);
});

test('yogi grows a second moment below D^2 by (1 - beta2) * D^2, as adam would not', (t) => {
  const w: AdapterSchema = new Map([['w', [1]]]);
  const global = new Map([['w', Float32Array.of(0)]]);
  const target = new Map([['w', Float64Array.of(2)]]);
  const state = new Map([
    ['m:w', Float32Array.of(0)],
    ['v:w', Float32Array.of(1)],
  ]);
  const yogi = serverStep(settingsOf('yogi'), w, global, target, state).state!.get('v:w')![0];
  const adam = serverStep(settingsOf('adam'), w, global, target, state).state!.get('v:w')![0];
  t.is(yogi, Math.fround(1 + (1 - 0.99) * 4));
  t.is(adam, Math.fround(0.99 * 1 + (1 - 0.99) * 4));
});

test('a state that does not fit the schema is refused, naming the missing or misfit tensor', (t) => {
  const global = new Map([...schema].map(([name, [r, c]]) => [name, new Float32Array(r * c)]));
  const target = new Map([...global].map(([name, x]) => [name, Float64Array.from(x, () => 0.1)]));
  const adamState = serverStep(settingsOf('adam'), schema, global, target, undefined).state!;
  const without = (key: string) => new Map([...adamState].filter(([k]) => k !== key));
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /lacks v:q\.lora_B of 3 values/,
    )(t.throws(() => serverStep(settingsOf('adam'), schema, global, target, without(`v:${B}`)))),
  );
  const short = new Map(adamState).set(`m:${A}`, new Float32Array(2));
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /lacks m:q\.lora_A of 3 values, or has another size/,
    )(t.throws(() => serverStep(settingsOf('adam'), schema, global, target, short))),
  );
  const extra = new Map(adamState).set('m:q.other', new Float32Array(3));
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /has 5 tensors, expected 4/,
    )(t.throws(() => serverStep(settingsOf('adam'), schema, global, target, extra))),
  );
  // avgm keeps m only: adam's state (with v) is not avgm's; sgd keeps none.
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /has 4 tensors, expected 2/,
    )(t.throws(() => serverStep(settingsOf('avgm'), schema, global, target, adamState))),
  );
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /has 4 tensors, expected 0/,
    )(t.throws(() => serverStep(settingsOf('sgd'), schema, global, target, adamState))),
  );
  // avgm's state (m only) lacks the v that adam needs.
  const avgmState = serverStep(settingsOf('avgm'), schema, global, target, undefined).state!;
  t.true(
    isAggregationError(
      'AGGREGATION_SHAPE',
      /lacks v:q\.lora_A/,
    )(t.throws(() => serverStep(settingsOf('adam'), schema, global, target, avgmState))),
  );
});

test('serverStateTensors stores each state tensor as F32 in the shape of the adapter tensor it belongs to', (t) => {
  const global = new Map([...schema].map(([name, [r, c]]) => [name, new Float32Array(r * c)]));
  const target = new Map([...global].map(([name, x]) => [name, Float64Array.from(x, (_, i) => i / 8)]));
  const state = serverStep(settingsOf('adam'), schema, global, target, undefined).state!;
  const tensors = serverStateTensors(schema, state);
  t.deepEqual([...tensors.keys()], [`m:${A}`, `v:${A}`, `m:${B}`, `v:${B}`]);
  t.deepEqual(tensors.get(`m:${A}`)!.shape, [1, 3]);
  t.deepEqual(tensors.get(`v:${B}`)!.shape, [3, 1]);
  t.is(tensors.get(`v:${B}`)!.dtype, 'F32');
  t.deepEqual(
    [...new Uint8Array(tensors.get(`v:${B}`)!.data)],
    [...new Uint8Array(state.get(`v:${B}`)!.buffer)],
  );
  t.true(
    isAggregationError(
      'AGGREGATION_TENSOR_NAME',
      /server state m:q\.nothing belongs to no adapter tensor/,
    )(t.throws(() => serverStateTensors(schema, new Map([['m:q.nothing', new Float32Array(3)]])))),
  );
});
