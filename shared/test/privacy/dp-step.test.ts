// DP-FedAvg's step of the round pipeline (aggregation/dp-step.ts): the header's arithmetic
// recomputed by hand, bit for bit; the sensitivity it promises (one participant moves the result
// by at most C/n whatever it sends); the noise's spread; the participant's distributed share; the
// seed commitment against an independent implementation; and the refusals.

import test from 'ava';
import {
  AggregationError,
  aggregateRound,
  distributedDpDelta,
  gaussianNoise,
  noiseSeedCommitment,
  type AdapterSchema,
  type AggregationConfig,
  type Contribution,
} from '@fedit/shared';

const A = 'm.lora_A.weight';
const B = 'm.lora_B.weight';
const SCHEMA: AdapterSchema = new Map([
  [A, [2, 3]],
  [B, [3, 2]],
]);
const GLOBAL = new Map(
  [...SCHEMA].map(([n, [r, c]]) => [
    n,
    Float32Array.from({ length: r * c }, (_, i) => Math.sin(i + n.length) / 3),
  ]),
);
const SEED = Uint8Array.from({ length: 32 }, (_, i) => 200 - i);
const DP = (clipNorm: number, noiseMultiplier: number): AggregationConfig => ({
  differentialPrivacy: {
    clipNorm: String(clipNorm),
    noiseMultiplier: String(noiseMultiplier),
    noise: 'central',
  },
});

const step = (k: number, size: number) =>
  new Map([...GLOBAL].map(([n, g]) => [n, g.map((v, i) => v + size * Math.cos(k * 5 + i + n.length))]));
const contributions = (updates: Map<string, Float32Array>[]): Contribution[] =>
  updates.map((update, k) => ({ participant: `p${k}`, exampleCount: 1 + 100 * k, update }));
const run = (
  updates: Map<string, Float32Array>[],
  config = DP(0.5, 1.3),
  seed = SEED,
  schema = SCHEMA,
  global = GLOBAL,
) =>
  aggregateRound({
    rule: 'fedavg-uniform',
    config,
    schema,
    global,
    contributions: contributions(updates),
    noiseSeed: seed,
  }).adapter;

test('the adapter is the header arithmetic, recomputed by hand bit for bit (example counts ignored)', (t) => {
  const updates = [step(0, 0.01), step(1, 1), step(2, 0.3)]; // one under C, two clipped
  const C = 0.5;
  const sigma = 1.3;
  const n = updates.length;
  const sums = new Map([...SCHEMA.keys()].map((name) => [name, new Float64Array(GLOBAL.get(name)!.length)]));
  for (const u of updates) {
    const deltas = [...SCHEMA.keys()].map((name) =>
      u.get(name)!.map((v, i) => Math.fround(v - GLOBAL.get(name)![i])),
    );
    const norm = Math.sqrt(deltas.flatMap((d) => [...d]).reduce((s, v) => s + v * v, 0));
    const scale = norm > C ? C / norm : 1;
    [...SCHEMA.keys()].forEach((name, k) =>
      deltas[k].forEach((v, i) => (sums.get(name)![i] += Math.fround(v * scale))),
    );
  }
  const noise = gaussianNoise(SEED, 12, sigma * C);
  let offset = 0;
  const got = run(updates);
  for (const name of SCHEMA.keys()) {
    const g = GLOBAL.get(name)!;
    const want = Float32Array.from(g, (v, i) => v + (sums.get(name)![i] + noise[offset + i]) / n);
    offset += g.length;
    t.deepEqual(got.get(name), want, name);
  }
});

test('one participant moves the result by at most C/n per update it replaces, whatever it sends', (t) => {
  const honest = [step(0, 0.2), step(1, 0.2), step(2, 0.2), step(3, 0.2)];
  const base = run(honest);
  for (const size of [1e-6, 5, 1e6]) {
    const poisoned = run([...honest.slice(0, 3), step(9, size)]);
    let squares = 0;
    for (const [name, v] of base) v.forEach((x, i) => (squares += (x - poisoned.get(name)![i]) ** 2));
    // Replacing one clipped update moves the sum by at most 2C, the mean by 2C/n (float32 slack).
    t.true(Math.sqrt(squares) <= (2 * 0.5) / 4 + 1e-6, `size ${size}: moved ${Math.sqrt(squares)}`);
  }
});

test('the noise on the mean has standard deviation sigma * C / n', (t) => {
  const schema: AdapterSchema = new Map([[A, [100, 200]]]);
  const global = new Map([[A, new Float32Array(20_000)]]);
  const still = [global, global, global, global, global]; // zero deltas: the adapter is the noise
  const got = aggregateRound({
    rule: 'fedavg-uniform',
    config: DP(2, 1.5),
    schema,
    global,
    contributions: contributions(still),
    noiseSeed: SEED,
  }).adapter.get(A)!;
  const mean = got.reduce((s, v) => s + v, 0) / got.length;
  const sd = Math.sqrt(got.reduce((s, v) => s + (v - mean) ** 2, 0) / got.length);
  const want = (1.5 * 2) / 5;
  t.true(Math.abs(sd / want - 1) < 0.03, `sd ${sd}, want ${want}`);
  t.true(Math.abs(mean) < (4 * want) / Math.sqrt(got.length), `mean ${mean}`);
  const other = run([step(0, 0.1), step(1, 0.1)], DP(2, 1.5), new Uint8Array(32));
  t.notDeepEqual(other, run([step(0, 0.1), step(1, 0.1)], DP(2, 1.5)), 'another seed, other noise');
});

test("a participant's distributed share: its clipped delta plus noise whose n shares sum to sigma * C", (t) => {
  const schema: AdapterSchema = new Map([[A, [100, 100]]]);
  const global = new Map([[A, new Float32Array(10_000)]]);
  const n = 4;
  const sum = new Float64Array(10_000);
  for (let k = 0; k < n; k++) {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + k);
    const share = distributedDpDelta(
      global,
      global,
      schema,
      { clipNorm: 1, noiseMultiplier: 2 },
      n,
      seed,
    ).get(A)!;
    share.forEach((v, i) => (sum[i] += v));
  }
  const sd = Math.sqrt(sum.reduce((s, v) => s + v * v, 0) / sum.length);
  t.true(Math.abs(sd / 2 - 1) < 0.03, `sum of shares sd ${sd}, want 2`);
  const big = new Map([[A, Float32Array.from({ length: 10_000 }, () => 1)]]);
  const clippedOnly = distributedDpDelta(
    big,
    global,
    schema,
    { clipNorm: 1, noiseMultiplier: 1e-12 },
    1,
    new Uint8Array(32),
  );
  const norm = Math.sqrt(clippedOnly.get(A)!.reduce((s, v) => s + v * v, 0));
  t.true(Math.abs(norm - 1) < 1e-5, `clipped to C: ${norm}`);
});

test('the seed commitment is SHA-256("fedit/dp/noise-seed/v1" || seed), as python hashlib computes it', (t) => {
  // python3 -c "import hashlib; print(hashlib.sha256(b'fedit/dp/noise-seed/v1' + bytes(range(32))).hexdigest())"
  t.is(
    noiseSeedCommitment(Uint8Array.from({ length: 32 }, (_, i) => i)),
    '41bf16bb8adc50dbac00c02cade2a3e5c4c1b552d0b157bad91d263677995b08',
  );
  t.throws(() => noiseSeedCommitment(new Uint8Array(31)), { message: /32 bytes/ });
});

test('refused: DP with another rule, with clipping, without a seed, and distributed noise from single updates', (t) => {
  const updates = [step(0, 0.1), step(1, 0.1)];
  const refuse = (f: () => unknown, message: RegExp) =>
    t.throws(f, { instanceOf: AggregationError, message });
  refuse(
    () =>
      aggregateRound({
        rule: 'fedit',
        config: DP(1, 1),
        schema: SCHEMA,
        global: GLOBAL,
        contributions: contributions(updates),
        noiseSeed: SEED,
      }),
    /fedavg-uniform alone/,
  );
  refuse(() => run(updates, { ...DP(1, 1), clipping: { kind: 'fixed', bound: '1' } }), /without clipping/);
  refuse(
    () =>
      aggregateRound({
        rule: 'fedavg-uniform',
        config: DP(1, 1),
        schema: SCHEMA,
        global: GLOBAL,
        contributions: contributions(updates),
      }),
    /needs the round's noise seed/,
  );
  refuse(
    () =>
      run(updates, { differentialPrivacy: { clipNorm: '1', noiseMultiplier: '1', noise: 'distributed' } }),
    /aggregated by the secure round/,
  );
  refuse(
    () => run(updates, { differentialPrivacy: { clipNorm: '0', noiseMultiplier: '1', noise: 'central' } }),
    /differentialPrivacy.clipNorm/,
  );
  refuse(
    () => run(updates, { differentialPrivacy: { clipNorm: '1', noiseMultiplier: '1', noise: 'nowhere' } }),
    /noise must be/,
  );
});
