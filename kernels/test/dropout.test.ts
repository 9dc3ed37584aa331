// LoRA dropout (model/dropout.ts): the right fraction is dropped at every optimisation level, masks
// are a pure function of (seed, site), sites differ, and the gradient uses the forward's mask.

import test from 'ava';
import * as ort from 'onnxruntime-node';
import { gradients } from '../src/graph/autodiff.ts';
import { Graph } from '../src/graph/ir.ts';
import * as F from '../src/graph/ops.ts';
import { dropoutSeed, hashDropout } from '../src/model/dropout.ts';
import { createSession } from '../src/runtime/session.ts';

const ROWS = 512;
const COLS = 96;
const N = ROWS * COLS;

async function masks(
  ratio: number,
  seeds: number[],
  sites: number[],
  optimization: 'disabled' | 'basic' | 'all' = 'all',
) {
  const g = new Graph('dropout_masks');
  const x = g.input('x', 'float32', [ROWS, COLS]);
  const seed = g.input('seed', 'float32', []);
  // exp(): the dropout input is computed, as a LoRA input is, not a graph input.
  sites.forEach((site) => g.output(hashDropout(F.exp(x), ratio, seed, site), `y${site}`));
  const s = await createSession(g, { optimization });
  const out: Float32Array[][] = [];
  for (const v of seeds) {
    const r = await s.run({
      x: new ort.Tensor('float32', new Float32Array(N), [ROWS, COLS]),
      seed: new ort.Tensor('float32', Float32Array.of(v), []),
    });
    out.push(sites.map((site) => r[`y${site}`].data as Float32Array));
  }
  await s.release();
  return out;
}

for (const optimization of ['disabled', 'basic', 'all'] as const) {
  test(`drops the requested fraction and scales the rest (optimization ${optimization})`, async (t) => {
    for (const ratio of [0.05, 0.1, 0.5]) {
      const [[y]] = await masks(ratio, [dropoutSeed(1, 1)], [0], optimization);
      const dropped = y.filter((v) => v === 0).length;
      const kept = y.filter((v) => Math.abs(v - 1 / (1 - ratio)) < 1e-5).length;
      t.is(dropped + kept, N, 'every element is dropped or scaled by 1 / (1 - ratio)');
      t.true(Math.abs(dropped / N - ratio) < 0.01, `ratio ${ratio}: dropped ${(dropped / N).toFixed(4)}`);
    }
  });
}

test('masks depend only on the seed and the site: same inputs, same mask; others differ', async (t) => {
  const [[a0, a1], [b0], [c0]] = await masks(0.5, [0.25, 0.25, 0.75], [0, 1]);
  t.deepEqual(Array.from(a0), Array.from(b0), 'same seed and site');
  const agree = (p: Float32Array, q: Float32Array) =>
    p.filter((v, i) => (v === 0) === (q[i] === 0)).length / N;
  t.true(Math.abs(agree(a0, a1) - 0.5) < 0.02, `sites are independent-looking: agreement ${agree(a0, a1)}`);
  t.true(Math.abs(agree(a0, c0) - 0.5) < 0.02, `seeds are independent-looking: agreement ${agree(a0, c0)}`);
  t.not(dropoutSeed(1, 2), dropoutSeed(1, 3));
  t.not(dropoutSeed(1, 2, 0), dropoutSeed(1, 2, 1));
  t.not(dropoutSeed(1, 2), dropoutSeed(2, 2));
});

test('the dropout gradient uses the forward mask', async (t) => {
  const g = new Graph('dropout_grad');
  const x = g.input('x', 'float32', [ROWS, COLS]);
  const w = g.input('w', 'float32', [ROWS, COLS]);
  const seed = g.input('seed', 'float32', []);
  const y = hashDropout(x, 0.3, seed, 4);
  const [dx] = gradients(F.reduceSum(F.mul(y, w), [0, 1], false), [x]);
  g.output(y, 'y');
  g.output(dx, 'dx');
  const s = await createSession(g);
  const xs = Float32Array.from({ length: N }, (_, i) => 1 + (i % 7) / 7);
  const ws = Float32Array.from({ length: N }, (_, i) => Math.cos(i));
  const out = await s.run({
    x: new ort.Tensor('float32', xs, [ROWS, COLS]),
    w: new ort.Tensor('float32', ws, [ROWS, COLS]),
    seed: new ort.Tensor('float32', Float32Array.of(0.5), []),
  });
  const ys = out.y.data as Float32Array;
  const dxs = out.dx.data as Float32Array;
  let bad = 0;
  for (let i = 0; i < N; i++) if (Math.abs(dxs[i] - (ws[i] * ys[i]) / xs[i]) > 1e-5) bad++;
  t.is(bad, 0);
  await s.release();
});
