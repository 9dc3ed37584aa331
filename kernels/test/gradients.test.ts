// One finite-difference check per gradient rule in src/graph/ops.ts (and per custom-gradient region).
import test from 'ava';
import type { Value } from '../src/graph/ir.ts';
import * as F from '../src/graph/ops.ts';
import { gradCheck, type GradInput } from './helpers/gradcheck.ts';
import { maskedMeanNll, tokenNll } from '../src/train/loss.ts';

const TOL = 1e-7;

function check(
  title: string,
  inputs: GradInput[],
  f: (...xs: Value[]) => Value,
  opts?: { h?: number; tol?: number },
) {
  test(title, async (t) => {
    const r = await gradCheck(inputs, f, opts);
    t.true(r.checked > 0);
    t.true(
      r.worstRelError < (opts?.tol ?? TOL),
      `worst relative error ${r.worstRelError.toExponential(2)} at ${r.worst}`,
    );
  });
}

const positive = (n: number) => Array.from({ length: n }, (_, i) => 0.5 + ((i * 7) % 5) / 4);

check(
  'Add broadcasts its gradient back to both shapes',
  [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'b', shape: [3, 1] },
  ],
  (a, b) => F.add(a, b),
);
check(
  'Sub negates the gradient of its right operand',
  [
    { name: 'a', shape: [2, 3] },
    { name: 'b', shape: [3] },
  ],
  (a, b) => F.sub(a, b),
);
check(
  'Mul sends each operand the other operand times the gradient',
  [
    { name: 'a', shape: [2, 1, 4] },
    { name: 'b', shape: [3, 4] },
  ],
  (a, b) => F.mul(a, b),
);
check(
  'Div handles numerator and denominator',
  [
    { name: 'a', shape: [2, 3] },
    { name: 'b', shape: [2, 3], data: positive(6) },
  ],
  (a, b) => F.div(a, b),
);
check('Pow with a constant exponent', [{ name: 'x', shape: [5], data: positive(5) }], (x) => F.pow(x, -0.5));
check('Neg', [{ name: 'x', shape: [4] }], (x) => F.neg(x));
check('Exp', [{ name: 'x', shape: [2, 3] }], (x) => F.exp(x));
check('Log', [{ name: 'x', shape: [6], data: positive(6) }], (x) => F.log(x));
check('Sqrt', [{ name: 'x', shape: [6], data: positive(6) }], (x) => F.sqrt(x));
check('Reciprocal', [{ name: 'x', shape: [6], data: positive(6) }], (x) => F.reciprocal(x));
check('Sigmoid', [{ name: 'x', shape: [2, 5] }], (x) => F.sigmoid(x));
check('Identity', [{ name: 'x', shape: [3] }], (x) => F.identity(x));
check(
  'Where routes the gradient by the condition',
  [
    { name: 'a', shape: [2, 3] },
    { name: 'b', shape: [3] },
  ],
  (a, b) => F.where(F.equal(F.constant(a.graph, [1, 0, 1, 0, 0, 1], 'float64', [2, 3]), 1), a, b),
);
check(
  'MatMul of two matrices',
  [
    { name: 'a', shape: [3, 4] },
    { name: 'b', shape: [4, 2] },
  ],
  (a, b) => F.matmul(a, b),
);
check(
  'MatMul of a batch by a shared weight folds the batch into the weight gradient',
  [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'w', shape: [4, 5] },
  ],
  (a, w) => F.matmul(a, w),
);
check(
  'MatMul with broadcast batch dims (grouped-query attention)',
  [
    { name: 'q', shape: [2, 1, 3, 2, 4] },
    { name: 'k', shape: [2, 2, 1, 4, 2] },
  ],
  (q, k) => F.matmul(q, k),
);
check('ReduceSum keeping dims', [{ name: 'x', shape: [2, 3, 4] }], (x) => F.reduceSum(x, [1], true));
check('ReduceSum dropping dims', [{ name: 'x', shape: [2, 3, 4] }], (x) => F.reduceSum(x, [0, 2], false));
check('ReduceMean', [{ name: 'x', shape: [2, 3, 4] }], (x) => F.reduceMean(x, [-1], true));
check('Softmax on the last axis', [{ name: 'x', shape: [2, 5] }], (x) => F.softmax(x, -1));
check('Reshape', [{ name: 'x', shape: [2, 6] }], (x) => F.reshape(x, [3, -1]));
check('Transpose', [{ name: 'x', shape: [2, 3, 4] }], (x) => F.transpose(x, [2, 0, 1]));
check('Expand', [{ name: 'x', shape: [3, 1] }], (x) => F.expand(x, [2, 3, 4]));
check('Unsqueeze', [{ name: 'x', shape: [3, 2] }], (x) => F.unsqueeze(x, [0, 2]));
check(
  'Concat splits the gradient back',
  [
    { name: 'a', shape: [2, 3] },
    { name: 'b', shape: [2, 2] },
  ],
  (a, b) => F.concat([a, b], 1),
);
check('Split concatenates gradients, with zeros for unused parts', [{ name: 'x', shape: [2, 6] }], (x) => {
  const [p, , r] = F.split(x, [2, 3, 1], 1);
  return F.concat([F.mul(p, 2), r], 1);
});
check(
  'Gather rows (embedding lookup) scatter-adds repeated rows',
  [
    { name: 'table', shape: [5, 3] },
    { name: 'ids', shape: [2, 3], dtype: 'int64', data: [1, 4, 1, 0, 1, 3] },
  ],
  (table, ids) => F.gather(table, ids, 0),
);
check(
  'GatherElements',
  [
    { name: 'x', shape: [3, 4] },
    { name: 'idx', shape: [3, 1], dtype: 'int64', data: [2, 0, 3] },
  ],
  (x, idx) => F.gatherElements(x, idx, 1),
);
check(
  'Cast round trip keeps the gradient',
  [{ name: 'x', shape: [3] }],
  (x) => F.cast(F.cast(x, 'float32'), 'float64'),
  { h: 1e-2, tol: 1e-4 },
);

// Custom-gradient regions: their hand-written rule against finite differences of their forward.
check(
  'cross-entropy region: softmax minus one-hot, repeated targets included',
  [
    { name: 'logits', shape: [4, 6] },
    { name: 'targets', shape: [4], dtype: 'int64', data: [2, 0, 5, 2] },
  ],
  (logits, targets) => tokenNll(logits, targets),
);
check(
  'masked mean loss over the region (the loss every step graph uses)',
  [
    { name: 'logits', shape: [5, 7] },
    { name: 'targets', shape: [5], dtype: 'int64', data: [1, 6, 0, 3, 3] },
    { name: 'mask', shape: [5], data: [1, 0, 1, 1, 0], differentiate: false },
  ],
  (logits, targets, mask) => maskedMeanNll(logits, targets, mask).loss,
);
