// LoRA dropout survives ONNX Runtime's graph optimisations and its gradient uses the same mask as its
// forward pass. onnxruntime-node is a build without training support, whose EliminateDropout rule
// deletes any Dropout whose mask output is unused, training mode or not; a dropout whose input needs
// no gradient (the first layer's LoRA sites) used to vanish that way.

import test from 'ava';
import * as ort from 'onnxruntime-node';
import { gradients } from '../src/graph/autodiff.ts';
import { Graph } from '../src/graph/ir.ts';
import * as F from '../src/graph/ops.ts';
import { createSession } from '../src/runtime/session.ts';

const N = 256;
const RATIO = 0.5;

for (const optimization of ['disabled', 'basic', 'all'] as const) {
  test(`dropout of a value that needs no gradient still drops (optimization ${optimization})`, async (t) => {
    const g = new Graph('dropout_frozen');
    const x = g.input('x', 'float32', [1, N]);
    // exp(): the Dropout input is computed, as a LoRA input is, not a graph input.
    const d = F.dropout(F.exp(x), RATIO, 7);
    g.output(F.reduceSum(d, [0, 1], false), 'sum');
    g.output(d, 'y');
    const s = await createSession(g, { optimization });
    try {
      const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(N), [1, N]) });
      const y = out.y.data as Float32Array;
      const dropped = y.filter((v) => v === 0).length;
      const kept = y.filter((v) => Math.abs(v - 1 / (1 - RATIO)) < 1e-6).length;
      t.is(dropped + kept, N, 'every element is either dropped or scaled by 1 / (1 - ratio)');
      t.true(dropped > N / 4 && dropped < (3 * N) / 4, `${dropped} of ${N} dropped at ratio ${RATIO}`);
    } finally {
      await s.release();
    }
  });
}

test('the dropout gradient reuses the forward mask', async (t) => {
  const g = new Graph('dropout_grad');
  const x = g.input('x', 'float32', [N]);
  const w = g.input('w', 'float32', [N]);
  const y = F.dropout(x, RATIO, 11);
  const loss = F.reduceSum(F.mul(y, w), [0], false);
  const [dx] = gradients(loss, [x]);
  g.output(y, 'y');
  g.output(dx, 'dx');
  const s = await createSession(g);
  try {
    const xs = Float32Array.from({ length: N }, (_, i) => 1 + i / N);
    const ws = Float32Array.from({ length: N }, (_, i) => Math.cos(i));
    const out = await s.run({
      x: new ort.Tensor('float32', xs, [N]),
      w: new ort.Tensor('float32', ws, [N]),
    });
    const ys = out.y.data as Float32Array;
    const dxs = out.dx.data as Float32Array;
    for (let i = 0; i < N; i++) {
      const keep = ys[i] / xs[i]; // 0 or 1 / (1 - ratio), the mask of this very run
      t.true(Math.abs(dxs[i] - ws[i] * keep) < 1e-5, `element ${i}: dx ${dxs[i]}, expected ${ws[i] * keep}`);
    }
  } finally {
    await s.release();
  }
});
