// The op table: every op the compiler can emit, each with its shape inference and, when it is
// differentiable, its gradient rule, side by side. Reading this file is reading all the calculus the
// compiler knows. Adding an op = one `define` entry + one finite-difference case in
// kernels/test/gradients.test.ts.
//
// Gradient rules receive the node and the gradients of its outputs, and return the gradient of each
// input (undefined where an input needs none). They build their result with the same functions the
// forward pass uses, so gradients are ordinary graph nodes.

import type { Attrs, ElementType, Dim, InferredOutput, Node, Shape, Value, Graph } from './ir.ts';
import { registerShapeInference, sameShape, staticShape } from './ir.ts';

export type GradRule = (
  node: Node,
  dOutputs: readonly (Value | undefined)[],
  needs: readonly boolean[],
) => (Value | undefined)[];

const gradRules = new Map<string, GradRule>();

export function gradientRule(op: string): GradRule | undefined {
  return gradRules.get(op);
}

function define(
  op: string,
  infer: (inputs: Value[], attrs: Attrs) => InferredOutput[],
  grad?: GradRule,
): void {
  registerShapeInference(op, (inputs, attrs) => infer(inputs as Value[], attrs));
  if (grad) gradRules.set(op, grad);
}

// ---------------------------------------------------------------------------------------------
// Operands, constants, shape helpers

export type Operand = Value | number;

const constantCache = new WeakMap<Graph, Map<string, Value>>();

/** A small constant (scalar, shape, axes), shared within a graph. */
export function constant(
  graph: Graph,
  values: readonly number[],
  dtype: ElementType,
  shape: Shape = [],
): Value {
  const key = `${dtype}|${shape.join(',')}|${values.join(',')}`;
  let cache = constantCache.get(graph);
  if (!cache) constantCache.set(graph, (cache = new Map()));
  const hit = cache.get(key);
  if (hit) return hit;
  const v = graph.initializer('const', dtype, shape, {
    kind: 'inline',
    bytes: encodeConstant(values, dtype),
  });
  v.constant = values;
  cache.set(key, v);
  return v;
}

function encodeConstant(values: readonly number[], dtype: ElementType): Uint8Array {
  switch (dtype) {
    case 'float32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'float64':
      return new Uint8Array(Float64Array.from(values).buffer);
    case 'int64':
      return new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer);
    case 'int32':
      return new Uint8Array(Int32Array.from(values).buffer);
    case 'bool':
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
    case 'float16':
      throw new Error('float16 constants are not used by the compiler');
  }
}

function ints(graph: Graph, values: readonly number[]): Value {
  return constant(graph, values, 'int64', [values.length]);
}

function graphOf(...operands: Operand[]): Graph {
  for (const o of operands) if (typeof o !== 'number') return o.graph;
  throw new Error('an op needs at least one graph value among its operands');
}

function lift(operand: Operand, like: Value): Value {
  return typeof operand === 'number' ? constant(like.graph, [operand], like.dtype) : operand;
}

function liftPair(a: Operand, b: Operand): [Value, Value] {
  if (typeof a === 'number' && typeof b === 'number') throw new Error('at least one operand must be a value');
  const av = typeof a === 'number' ? lift(a, b as Value) : a;
  const bv = typeof b === 'number' ? lift(b, av) : b;
  return [av, bv];
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function broadcastShapes(...shapes: Shape[]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1 || d === dim) continue;
      if (dim === 1) dim = d;
      else throw new Error(`shapes [${shapes.map((x) => x.join(',')).join('] and [')}] do not broadcast`);
    }
    out.push(dim);
  }
  return out;
}

/** Sums a broadcast gradient back down to the shape of the operand it flows into. */
export function unbroadcast(grad: Value, shape: Shape): Value {
  if (sameShape(grad.shape, shape)) return grad;
  const lead = grad.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && grad.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length ? reduceSum(grad, axes, true) : grad;
  return sameShape(summed.shape, shape) ? summed : reshape(summed, shape);
}

function same(x: Value): InferredOutput[] {
  return [{ dtype: x.dtype, shape: x.shape }];
}

// ---------------------------------------------------------------------------------------------
// Elementwise

define(
  'Add',
  ([a, b]) => [{ dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) }],
  (n, [dy], need) => [
    need[0] ? unbroadcast(dy!, n.inputs[0]!.shape) : undefined,
    need[1] ? unbroadcast(dy!, n.inputs[1]!.shape) : undefined,
  ],
);
define(
  'Sub',
  ([a, b]) => [{ dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) }],
  (n, [dy], need) => [
    need[0] ? unbroadcast(dy!, n.inputs[0]!.shape) : undefined,
    need[1] ? unbroadcast(neg(dy!), n.inputs[1]!.shape) : undefined,
  ],
);
define(
  'Mul',
  ([a, b]) => [{ dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) }],
  (n, [dy], need) => {
    const [a, b] = n.inputs as Value[];
    return [
      need[0] ? unbroadcast(mul(dy!, b), a.shape) : undefined,
      need[1] ? unbroadcast(mul(dy!, a), b.shape) : undefined,
    ];
  },
);
define(
  'Div',
  ([a, b]) => [{ dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) }],
  (n, [dy], need) => {
    const [a, b] = n.inputs as Value[];
    const y = n.outputs[0];
    return [
      need[0] ? unbroadcast(div(dy!, b), a.shape) : undefined,
      need[1] ? unbroadcast(neg(div(mul(dy!, y), b)), b.shape) : undefined,
    ];
  },
);
/** Pow with a constant exponent (all the compiler needs: x^2, x^-0.5). */
define(
  'Pow',
  ([a, b]) => [{ dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) }],
  (n, [dy], need) => {
    const [x, p] = n.inputs as Value[];
    if (need[1]) throw new Error('Pow: gradient with respect to the exponent is not supported');
    if (p.constant?.length !== 1) throw new Error('Pow: the exponent must be a scalar constant');
    const e = p.constant[0];
    return [unbroadcast(mul(dy!, mul(pow(x, e - 1), e)), x.shape), undefined];
  },
);
define(
  'Neg',
  ([x]) => same(x),
  (_n, [dy]) => [neg(dy!)],
);
define(
  'Exp',
  ([x]) => same(x),
  (n, [dy]) => [mul(dy!, n.outputs[0])],
);
define(
  'Log',
  ([x]) => same(x),
  (n, [dy]) => [div(dy!, n.inputs[0]!)],
);
define(
  'Sqrt',
  ([x]) => same(x),
  (n, [dy]) => [div(mul(dy!, 0.5), n.outputs[0])],
);
define(
  'Reciprocal',
  ([x]) => same(x),
  (n, [dy]) => {
    const y = n.outputs[0];
    return [neg(mul(dy!, mul(y, y)))];
  },
);
define(
  'Sigmoid',
  ([x]) => same(x),
  (n, [dy]) => {
    const y = n.outputs[0];
    return [mul(dy!, mul(y, sub(1, y)))];
  },
);
define(
  'Identity',
  ([x]) => same(x),
  (_n, [dy]) => [dy],
);
define(
  'Cast',
  ([x], attrs) => [{ dtype: ONNX_DTYPE_NAMES[attrs.to as number], shape: x.shape }],
  (n, [dy]) => [cast(dy!, n.inputs[0]!.dtype)],
);
define(
  'Where',
  ([c, a, b]) => [{ dtype: a.dtype, shape: broadcastShapes(c.shape, a.shape, b.shape) }],
  (n, [dy], need) => {
    const [c, a, b] = n.inputs as Value[];
    const zero = constant(dy!.graph, [0], dy!.dtype);
    return [
      undefined,
      need[1] ? unbroadcast(where(c, dy!, zero), a.shape) : undefined,
      need[2] ? unbroadcast(where(c, zero, dy!), b.shape) : undefined,
    ];
  },
);
// Comparison and selection ops used by the optimizer and masks; nothing flows back through them.
for (const op of ['Min', 'Max'])
  define(op, ([a, b]) => [{ dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) }]);
for (const op of ['Equal', 'Less', 'Greater'])
  define(op, ([a, b]) => [{ dtype: 'bool', shape: broadcastShapes(a.shape, b.shape) }]);

// ---------------------------------------------------------------------------------------------
// Linear algebra

function matmulShape(a: Shape, b: Shape): Dim[] {
  if (a.length < 2 || b.length < 2) throw new Error('MatMul: operands of rank >= 2 only');
  const [m, k] = a.slice(-2);
  const [k2, nn] = b.slice(-2);
  if (k !== k2) throw new Error(`MatMul: inner dims differ: [${a.join(',')}] @ [${b.join(',')}]`);
  return [...broadcastShapes(a.slice(0, -2), b.slice(0, -2)), m, nn];
}

define(
  'MatMul',
  ([a, b]) => [{ dtype: a.dtype, shape: matmulShape(a.shape, b.shape) }],
  (n, [dy], need) => {
    const [a, b] = n.inputs as Value[];
    return [
      need[0] ? matmulGradLeft(dy!, b, a.shape) : undefined,
      need[1] ? matmulGradRight(a, dy!, b.shape) : undefined,
    ];
  },
);

/** dA = dY @ B^T, summed over any batch dims A was broadcast along. */
function matmulGradLeft(dy: Value, b: Value, aShape: Shape): Value {
  return unbroadcast(matmul(dy, transposeLast2(b)), aShape);
}

/**
 * dB = A^T @ dY. When B is a plain matrix shared across a batch (a weight), fold the batch into the
 * contraction ([N,k]^T @ [N,n]) instead of forming one product per batch entry and summing.
 */
function matmulGradRight(a: Value, dy: Value, bShape: Shape): Value {
  if (bShape.length === 2 && a.rank > 2) {
    const k = a.shape[a.rank - 1];
    const nOut = dy.shape[dy.rank - 1];
    return matmul(transpose(reshape(a, [-1, k]), [1, 0]), reshape(dy, [-1, nOut]));
  }
  return unbroadcast(matmul(transposeLast2(a), dy), bShape);
}

// ---------------------------------------------------------------------------------------------
// Reductions and normalisations

function reducedShape(x: Value, axesInput: Value | undefined, keepdims: boolean): Dim[] {
  const axes = axesInput
    ? (axesInput.constant ?? []).map((a) => normAxis(a, x.rank))
    : x.shape.map((_, i) => i);
  return x.shape.flatMap((d, i) => (axes.includes(i) ? (keepdims ? [1] : []) : [d]));
}

function reduceGrad(n: Node, dy: Value, scaleByCount: boolean): Value {
  const x = n.inputs[0]!;
  const axes = n.inputs[1] ? n.inputs[1].constant!.map((a) => normAxis(a, x.rank)) : x.shape.map((_, i) => i);
  let g = dy;
  if (n.attrs.keepdims === 0)
    g = reshape(
      g,
      x.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
    );
  if (scaleByCount) {
    const count = axes.reduce((c, a) => c * (x.shape[a] as number), 1);
    g = mul(g, 1 / count);
  }
  return expand(g, x.shape);
}

define(
  'ReduceSum',
  ([x, axes], attrs) => [{ dtype: x.dtype, shape: reducedShape(x, axes, attrs.keepdims !== 0) }],
  (n, [dy]) => [reduceGrad(n, dy!, false), undefined],
);
define(
  'ReduceMean',
  ([x, axes], attrs) => [{ dtype: x.dtype, shape: reducedShape(x, axes, attrs.keepdims !== 0) }],
  (n, [dy]) => [reduceGrad(n, dy!, true), undefined],
);
// ReduceMax appears only as a numerical stabiliser inside regions that bring their own gradient.
define('ReduceMax', ([x, axes], attrs) => [
  { dtype: x.dtype, shape: reducedShape(x, axes, attrs.keepdims !== 0) },
]);

define(
  'Softmax',
  ([x]) => same(x),
  (n, [dy]) => {
    // dx = y * (dy - sum(dy * y))
    const y = n.outputs[0];
    const axis = (n.attrs.axis as number | undefined) ?? -1;
    return [mul(y, sub(dy!, reduceSum(mul(dy!, y), [axis], true)))];
  },
);

// ---------------------------------------------------------------------------------------------
// Shape and data movement

function resolveReshape(x: Value, target: readonly number[]): Dim[] {
  const out: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i] : d));
  const minus = out.indexOf(-1);
  if (minus >= 0) {
    const total = staticShape(x.shape, `Reshape of ${x.name}`).reduce((a, b) => a * b, 1);
    const known = (out.filter((d, i) => i !== minus) as number[]).reduce((a, b) => a * b, 1);
    out[minus] = total / known;
  }
  return out;
}

define(
  'Reshape',
  ([x, shape]) => [{ dtype: x.dtype, shape: resolveReshape(x, shape.constant!) }],
  (n, [dy]) => [reshape(dy!, n.inputs[0]!.shape), undefined],
);
define(
  'Transpose',
  ([x], attrs) => [{ dtype: x.dtype, shape: (attrs.perm as number[]).map((p) => x.shape[p]) }],
  (n, [dy]) => {
    const perm = n.attrs.perm as number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [transpose(dy!, inverse)];
  },
);
define(
  'Expand',
  ([x, shape]) => [{ dtype: x.dtype, shape: broadcastShapes(x.shape, shape.constant!) }],
  (n, [dy]) => [unbroadcast(dy!, n.inputs[0]!.shape), undefined],
);
define(
  'Unsqueeze',
  ([x, axes]) => {
    const rank = x.rank + axes.constant!.length;
    const ax = axes.constant!.map((a) => normAxis(a, rank));
    const out: Dim[] = [];
    for (let i = 0, j = 0; i < rank; i++) out.push(ax.includes(i) ? 1 : x.shape[j++]);
    return [{ dtype: x.dtype, shape: out }];
  },
  (n, [dy]) => [reshape(dy!, n.inputs[0]!.shape), undefined],
);
define(
  'Concat',
  (xs, attrs) => {
    const axis = normAxis(attrs.axis as number, xs[0].rank);
    const shape = [...xs[0].shape];
    const dims = xs.map((x) => x.shape[axis]);
    shape[axis] = dims.every((d) => typeof d === 'number')
      ? (dims as number[]).reduce((a, b) => a + b, 0)
      : dims.join('+'); // symbolic (past + new tokens); ONNX Runtime resolves it at run time
    return [{ dtype: xs[0].dtype, shape }];
  },
  (n, [dy], need) => {
    const axis = n.attrs.axis as number;
    const sizes = n.inputs.map((x) => x!.shape[normAxis(axis, x!.rank)] as number);
    const parts = split(dy!, sizes, axis);
    return parts.map((p, i) => (need[i] ? p : undefined));
  },
);
define(
  'Split',
  ([x, sizes], attrs) => {
    const axis = normAxis(attrs.axis as number, x.rank);
    return sizes.constant!.map((s) => {
      const shape = [...x.shape];
      shape[axis] = s;
      return { dtype: x.dtype, shape };
    });
  },
  (n, dys) => {
    const parts = dys.map((dy, i) => dy ?? zeros(n.inputs[0]!.graph, n.outputs[i].dtype, n.outputs[i].shape));
    return [concat(parts, n.attrs.axis as number), undefined];
  },
);
define(
  'Gather',
  ([data, idx], attrs) => {
    const axis = normAxis((attrs.axis as number | undefined) ?? 0, data.rank);
    return [
      {
        dtype: data.dtype,
        shape: [...data.shape.slice(0, axis), ...idx.shape, ...data.shape.slice(axis + 1)],
      },
    ];
  },
  (n, [dy]) => {
    // Only row gathers (embedding lookups) are differentiated: scatter-add rows back into the table.
    const [data, idx] = n.inputs as Value[];
    if (((n.attrs.axis as number | undefined) ?? 0) !== 0)
      throw new Error('Gather: gradient only for axis 0');
    const rowShape = data.shape.slice(1);
    const flatIdx = reshape(idx, [-1, 1]);
    const flatDy = reshape(dy!, [-1, ...rowShape]);
    return [scatterNDAdd(zeros(data.graph, data.dtype, data.shape), flatIdx, flatDy), undefined];
  },
);
define(
  'GatherElements',
  ([data, idx]) => [{ dtype: data.dtype, shape: idx.shape }],
  (n, [dy]) => {
    const [data, idx] = n.inputs as Value[];
    const axis = (n.attrs.axis as number | undefined) ?? 0;
    return [scatterElementsAdd(zeros(data.graph, data.dtype, data.shape), idx, dy!, axis), undefined];
  },
);
// Elementwise ops used only to build masks and hashes; nothing flows back through them.
for (const op of ['Sin', 'Floor']) define(op, ([x]) => same(x));
define('ScatterND', ([data]) => same(data));
define('ScatterElements', ([data]) => same(data));

// ---------------------------------------------------------------------------------------------
// The builder functions: what model code calls.

function one(op: string, inputs: (Value | undefined)[], attrs: Attrs = {}, name?: string): Value {
  const g = graphOf(...(inputs.filter(Boolean) as Value[]));
  return g.node(op, inputs, attrs, name ? { names: [name] } : {})[0];
}

export const add = (a: Operand, b: Operand) => one('Add', liftPair(a, b));
export const sub = (a: Operand, b: Operand) => one('Sub', liftPair(a, b));
export const mul = (a: Operand, b: Operand) => one('Mul', liftPair(a, b));
export const div = (a: Operand, b: Operand) => one('Div', liftPair(a, b));
export const pow = (x: Value, e: number) => one('Pow', [x, constant(x.graph, [e], x.dtype)]);
export const min = (a: Operand, b: Operand) => one('Min', liftPair(a, b));
export const max = (a: Operand, b: Operand) => one('Max', liftPair(a, b));
export const neg = (x: Value) => one('Neg', [x]);
export const exp = (x: Value) => one('Exp', [x]);
export const log = (x: Value) => one('Log', [x]);
export const sqrt = (x: Value) => one('Sqrt', [x]);
export const reciprocal = (x: Value) => one('Reciprocal', [x]);
export const sigmoid = (x: Value) => one('Sigmoid', [x]);
export const sin = (x: Value) => one('Sin', [x]);
export const floor = (x: Value) => one('Floor', [x]);
export const identity = (x: Value, name?: string) => one('Identity', [x], {}, name);
export const where = (c: Value, a: Operand, b: Operand) => {
  const [av, bv] = liftPair(a, b);
  return one('Where', [c, av, bv]);
};
export const equal = (a: Operand, b: Operand) => one('Equal', liftPair(a, b));
export const less = (a: Operand, b: Operand) => one('Less', liftPair(a, b));
export const matmul = (a: Value, b: Value) => one('MatMul', [a, b]);
export const softmax = (x: Value, axis = -1) => one('Softmax', [x], { axis });
export const reduceSum = (x: Value, axes: number[], keepdims = false) =>
  one('ReduceSum', [x, ints(x.graph, axes)], { keepdims: keepdims ? 1 : 0 });
export const reduceMean = (x: Value, axes: number[], keepdims = false) =>
  one('ReduceMean', [x, ints(x.graph, axes)], { keepdims: keepdims ? 1 : 0 });
export const reduceMax = (x: Value, axes: number[], keepdims = false) =>
  one('ReduceMax', [x, ints(x.graph, axes)], { keepdims: keepdims ? 1 : 0 });
export const reshape = (x: Value, shape: readonly Dim[]) =>
  one('Reshape', [
    x,
    ints(
      x.graph,
      shape.map((d) => (typeof d === 'number' ? d : 0)),
    ),
  ]);
export const transpose = (x: Value, perm: number[]) => one('Transpose', [x], { perm });
export const transposeLast2 = (x: Value) => {
  const perm = x.shape.map((_, i) => i);
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return transpose(x, perm);
};
export const expand = (x: Value, shape: Shape) =>
  sameShape(x.shape, shape) ? x : one('Expand', [x, ints(x.graph, staticShape(shape, 'Expand'))]);
export const unsqueeze = (x: Value, axes: number[]) => one('Unsqueeze', [x, ints(x.graph, axes)]);
export const concat = (xs: Value[], axis: number) => one('Concat', xs, { axis });
export const split = (x: Value, sizes: number[], axis: number) =>
  x.graph.node('Split', [x, ints(x.graph, sizes)], { axis });
export const gather = (data: Value, idx: Value, axis = 0) => one('Gather', [data, idx], { axis });
export const gatherElements = (data: Value, idx: Value, axis: number) =>
  one('GatherElements', [data, idx], { axis });
export const scatterNDAdd = (data: Value, idx: Value, updates: Value) =>
  one('ScatterND', [data, idx, updates], { reduction: 'add' });
export const scatterElementsAdd = (data: Value, idx: Value, updates: Value, axis: number) =>
  one('ScatterElements', [data, idx, updates], { axis, reduction: 'add' });
export const cast = (x: Value, to: ElementType) =>
  x.dtype === to ? x : one('Cast', [x], { to: ONNX_DTYPE_CODES[to] });
export function zeros(graph: Graph, dtype: ElementType, shape: Shape): Value {
  return expand(constant(graph, [0], dtype), shape);
}

// ONNX TensorProto.DataType codes.
export const ONNX_DTYPE_CODES: Record<ElementType, number> = {
  float32: 1,
  bool: 9,
  int32: 6,
  int64: 7,
  float16: 10,
  float64: 11,
};
const ONNX_DTYPE_NAMES: Record<number, ElementType> = Object.fromEntries(
  Object.entries(ONNX_DTYPE_CODES).map(([k, v]) => [v, k as ElementType]),
);
