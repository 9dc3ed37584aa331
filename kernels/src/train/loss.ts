// Next-token cross-entropy as one custom-gradient region: the forward is the numerically stable
// log-sum-exp written with ops every execution provider runs natively (ReduceMax, Sub, Exp,
// ReduceSum, Log, GatherElements: no SoftmaxCrossEntropyLoss, which WebGPU lacks), and the gradient
// is the closed form softmax - onehot, instead of differentiating through each of those nodes over
// the whole [tokens, vocab] matrix.

import type { Value } from '../graph/ir.ts';
import {
  add,
  div,
  exp,
  gatherElements,
  log,
  max,
  mul,
  neg,
  reduceMax,
  reduceSum,
  reshape,
  scatterElementsAdd,
  sub,
  unsqueeze,
} from '../graph/ops.ts';

/** Per-token negative log-likelihood [N] of `targets` (int32 or int64 [N]) under `logits` [N, V]. */
export function tokenNll(logits: Value, targets: Value): Value {
  const g = logits.graph;
  const idx = unsqueeze(targets, [1]); // [N, 1]
  const [nll] = g.region(
    'cross_entropy',
    [logits],
    () => {
      const m = reduceMax(logits, [1], true);
      const e = exp(sub(logits, m));
      const s = reduceSum(e, [1], true);
      const lse = add(log(s), m);
      const picked = gatherElements(logits, idx, 1);
      // e and s are region outputs only so the gradient can reuse them instead of recomputing.
      return [reshape(sub(lse, picked), [logits.shape[0]]), e, s];
    },
    ([, e, s]) =>
      ([dNll]) => {
        const d = unsqueeze(dNll!, [1]); // [N, 1]
        const probs = div(e, s);
        return [scatterElementsAdd(mul(probs, d), idx, neg(d), 1)];
      },
  );
  return nll;
}

/**
 * Mean NLL over the positions where `mask` (float [N]) is 1, the loss of one micro-batch.
 * Also returns the masked sum and the count, which evaluation adds up across batches.
 */
export function maskedMeanNll(
  logits: Value,
  targets: Value,
  mask: Value,
): { loss: Value; sum: Value; count: Value } {
  const nll = tokenNll(logits, targets);
  const sum = reduceSum(mul(nll, mask), [0], false);
  const count = reduceSum(mask, [0], false);
  return { loss: div(sum, max(count, 1)), sum, count };
}
