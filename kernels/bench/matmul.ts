// The machine's best measured MatMul rate through the same onnxruntime CPU path the training step
// uses: the ceiling that the step's achieved FLOP/s is compared with.

import * as ort from 'onnxruntime-node';
import { Graph } from '../src/graph/ir.ts';
import { matmul } from '../src/graph/ops.ts';
import { createSession } from '../src/runtime/session.ts';

export interface MatmulResult {
  m: number;
  k: number;
  n: number;
  gflops: number;
}

async function measure(
  m: number,
  k: number,
  n: number,
  threads: number | undefined,
  minSeconds: number,
): Promise<MatmulResult> {
  const g = new Graph('matmul');
  const a = g.input('a', 'float32', [m, k]);
  const b = g.input('b', 'float32', [k, n]);
  g.output(matmul(a, b), 'c');
  const s = await createSession(g, { threads });
  const feeds = {
    a: new ort.Tensor('float32', new Float32Array(m * k).fill(0.5), [m, k]),
    b: new ort.Tensor('float32', new Float32Array(k * n).fill(0.25), [k, n]),
  };
  await s.run(feeds); // warm-up
  let best = Infinity;
  const start = performance.now();
  let runs = 0;
  while (runs < 3 || performance.now() - start < minSeconds * 1000) {
    const t0 = performance.now();
    await s.run(feeds);
    best = Math.min(best, performance.now() - t0);
    runs++;
  }
  await s.release();
  return { m, k, n, gflops: (2 * m * k * n) / (best / 1000) / 1e9 };
}

/** Square sizes plus the shapes of a training step; returns every result and the best. */
export async function bestMatmul(
  threads: number | undefined,
  extraShapes: [number, number, number][] = [],
  minSeconds = 0.5,
) {
  const shapes: [number, number, number][] = [[1024, 1024, 1024], [2048, 2048, 2048], ...extraShapes];
  const results: MatmulResult[] = [];
  for (const [m, k, n] of shapes) results.push(await measure(m, k, n, threads, minSeconds));
  const best = results.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  return { best, results };
}
