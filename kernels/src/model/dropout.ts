// PEFT's LoRA dropout, with the mask drawn by a hash inside the graph instead of ONNX's Dropout:
//  - the mask is a pure function of (seed input, site, element), so a run resumed from a checkpoint
//    draws exactly the masks the uninterrupted run would have (ORT's Dropout keeps a hidden RNG
//    state per session, lost on restart);
//  - it uses only Sin, Floor, Less, Where and Mul, which every execution provider runs natively
//    (WebGPU has no Dropout or random-number kernel);
//  - onnxruntime-node (a build without training support) deletes training-mode Dropout nodes whose
//    mask output is unused, which once silently disabled the first layer's LoRA dropout.
// The mask does not depend on anything trainable, so autodiff's Mul rule gives the right gradient
// (dy * mask / (1 - ratio)) with no rule of its own.

import type { Value } from '../graph/ir.ts';
import { add, constant, floor, less, mul, sin, sub, where } from '../graph/ops.ts';

/** Host-side: the dropout seed input for (run seed, step, micro-batch), in [0, 1). */
export function dropoutSeed(seed: number, step: number, microBatch = 0): number {
  const mixed =
    (Math.imul(seed | 0, 0x9e3779b1) ^
      Math.imul(step | 0, 0x85ebca6b) ^
      Math.imul(microBatch | 0, 0xc2b2ae35)) >>>
    0;
  return (mixed % 1_000_003) / 1_000_003;
}

const fract = (x: number) => x - Math.floor(x);

/**
 * Zeroes each element of x with probability `ratio` and scales the rest by 1 / (1 - ratio).
 * `seed` is a scalar graph input (see dropoutSeed); `site` tells the dropout layers apart.
 */
export function hashDropout(x: Value, ratio: number, seed: Value, site: number): Value {
  const g = x.graph;
  const shape = x.shape.map((d) => {
    if (typeof d !== 'number') throw new Error('hashDropout needs a static shape');
    return d;
  });
  const cols = shape[shape.length - 1];
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  // Per-row and per-column offsets from low-discrepancy sequences, computed here in float64 and
  // stored small, so the in-graph Sin never sees large arguments (where float32 sin is poor).
  const rowPart = constant(
    g,
    Array.from({ length: rows }, (_, r) => fract(r * 0.7548776662466927 + site * 0.1234567)),
    x.dtype,
    [...shape.slice(0, -1), 1],
  );
  const colPart = constant(
    g,
    Array.from({ length: cols }, (_, c) => fract(c * 0.5698402909980532)),
    x.dtype,
    [cols],
  );
  const t = add(add(rowPart, colPart), seed); // in [0, 3)
  const wave = mul(sin(mul(t, 12.9898)), 43758.5453);
  const u = sub(wave, floor(wave)); // fract: uniform-looking in [0, 1)
  const keep = where(less(u, ratio), constant(g, [0], x.dtype), constant(g, [1 / (1 - ratio)], x.dtype));
  return mul(x, keep);
}
