// Finite-difference checks of gradient rules: build f in float64, differentiate it with the
// compiler, run both on onnxruntime, and compare the analytic gradient with central differences.

import * as ort from 'onnxruntime-node';
import { Graph, type Value } from '../../src/graph/ir.ts';
import { mul, reduceSum } from '../../src/graph/ops.ts';
import { gradients } from '../../src/graph/autodiff.ts';
import { createSession } from '../../src/runtime/session.ts';
import { uniformSampler } from '../../src/model/random.ts';

export interface GradInput {
  name: string;
  shape: number[];
  /** Values to use; default: seeded uniform in [-1, 1]. Int64 inputs are never differentiated. */
  data?: number[];
  dtype?: 'float64' | 'int64';
  /** Whether to check the gradient with respect to this input (default: true for float inputs). */
  differentiate?: boolean;
}

function feedTensor(inp: GradInput, data: number[]): ort.Tensor {
  return inp.dtype === 'int64'
    ? new ort.Tensor(
        'int64',
        BigInt64Array.from(data, (v) => BigInt(v)),
        inp.shape,
      )
    : new ort.Tensor('float64', Float64Array.from(data), inp.shape);
}

export interface GradCheckResult {
  worstRelError: number;
  worst: string;
  checked: number;
}

/**
 * Checks d(sum(f(x) * r))/dx for a random fixed cotangent r, element by element, with central
 * differences (step h). Returns the worst relative error max|a-n| / max(1, |n|) style, scaled by
 * the gradient's magnitude so tiny entries are not judged on noise.
 */
export async function gradCheck(
  inputs: GradInput[],
  f: (...xs: Value[]) => Value,
  { seed = 1, h = 1e-6 }: { seed?: number; h?: number } = {},
): Promise<GradCheckResult> {
  const rand = uniformSampler(seed);
  const data = inputs.map(
    (inp) => inp.data ?? Array.from({ length: inp.shape.reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1),
  );

  const graph = new Graph('gradcheck');
  const xs = inputs.map((inp) => graph.input(inp.name, inp.dtype ?? 'float64', inp.shape));
  const y = f(...xs);
  const r = graph.input('cotangent', 'float64', y.shape);
  const loss = reduceSum(
    mul(y, r),
    y.shape.map((_, i) => i),
    false,
  );
  const diffIdx = inputs
    .map((inp, i) => i)
    .filter((i) => (inputs[i].dtype ?? 'float64') === 'float64' && inputs[i].differentiate !== false);
  const grads = gradients(
    loss,
    diffIdx.map((i) => xs[i]),
  );
  graph.output(loss, 'loss');
  grads.forEach((g, k) => graph.output(g, `grad_${inputs[diffIdx[k]].name}`));
  const session = await createSession(graph, { optimization: 'disabled' });

  const rSize = y.shape.reduce<number>((a, b) => a * (b as number), 1);
  const rData = Float64Array.from({ length: rSize }, () => rand() * 2 - 1);
  const run = async (vals: number[][]) => {
    const feeds: Record<string, ort.Tensor> = {
      cotangent: new ort.Tensor('float64', rData, y.shape as number[]),
    };
    inputs.forEach((inp, i) => (feeds[inp.name] = feedTensor(inp, vals[i])));
    return session.run(feeds);
  };

  const base = await run(data);
  let worstRelError = 0;
  let worst = '';
  let checked = 0;
  for (const [k, i] of diffIdx.entries()) {
    const analytic = base[`grad_${inputs[i].name}`].data as Float64Array;
    const scale = Math.max(1e-3, ...Array.from(analytic, Math.abs));
    for (let e = 0; e < data[i].length; e++) {
      const plus = data.map((d) => d.slice());
      const minus = data.map((d) => d.slice());
      plus[i][e] += h;
      minus[i][e] -= h;
      const lp = ((await run(plus)).loss.data as Float64Array)[0];
      const lm = ((await run(minus)).loss.data as Float64Array)[0];
      const numeric = (lp - lm) / (2 * h);
      const err = Math.abs(numeric - analytic[e]) / scale;
      checked++;
      if (err > worstRelError) {
        worstRelError = err;
        worst = `${inputs[i].name}[${e}]: analytic ${analytic[e]} vs numeric ${numeric}`;
      }
    }
    void k;
  }
  await session.release();
  return { worstRelError, worst, checked };
}
