// The graph IR that fedit's compiler builds and differentiates before it becomes ONNX.
//
// A Graph is a list of nodes in the order they were built, which is always a valid topological
// order (a node can only consume values that already exist). Shapes are inferred as nodes are added,
// so gradient rules can reason about broadcasting statically. Dims are numbers, or strings for
// symbolic dims (batch, past length) that ONNX Runtime resolves at run time.

/**
 * The element type of a graph value, in onnxruntime's names ('float32', not safetensors' 'F32': that
 * is @fedit/shared's DType, the dtype of a stored tensor). ops.ts maps these to ONNX type codes.
 */
export type ElementType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'bool';
export type Dim = number | string;
export type Shape = readonly Dim[];

export type AttrValue =
  number | string | readonly number[] | { float: number } | { floats: readonly number[] };
export type Attrs = Record<string, AttrValue>;

export class Value {
  /** Set when a node produced this value; inputs, constants and weights have none. */
  producer: Node | undefined;
  /** The element values of a small constant (shapes, axes, scalars), readable by shape inference. */
  constant: readonly number[] | undefined;
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: ElementType,
    readonly shape: Shape,
    readonly kind: 'input' | 'initializer' | 'intermediate',
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  /** The static element count; throws for symbolic shapes. */
  get size(): number {
    return staticShape(this.shape, this.name).reduce((a, b) => a * b, 1);
  }

  toString(): string {
    return `${this.name}:${this.dtype}[${this.shape.join(',')}]`;
  }
}

export interface Node {
  readonly op: string;
  readonly domain: string;
  readonly inputs: readonly (Value | undefined)[];
  readonly outputs: readonly Value[];
  readonly attrs: Attrs;
  /** Set on nodes emitted inside a custom-gradient region (see Graph.region). */
  region?: Region;
}

/**
 * A group of nodes that autodiff treats as one op with a hand-written gradient (a fused
 * cross-entropy, say), instead of differentiating each node inside it.
 */
export interface Region {
  readonly name: string;
  readonly inputs: readonly Value[];
  outputs: readonly Value[];
  readonly grad: RegionGrad;
}
export type RegionGrad = (
  dOutputs: readonly (Value | undefined)[],
  needs: readonly boolean[],
) => (Value | undefined)[];

/** Where a frozen weight's bytes live: inline, or at an offset in a side file (ONNX external data). */
export type InitializerData =
  { kind: 'inline'; bytes: Uint8Array } | { kind: 'external'; file: string; offset: number; length: number };

export interface Initializer {
  readonly value: Value;
  readonly data: InitializerData;
}

export interface InferredOutput {
  dtype: ElementType;
  shape: Shape;
}
export type ShapeInference = (inputs: readonly (Value | undefined)[], attrs: Attrs) => InferredOutput[];

const shapeInference = new Map<string, ShapeInference>();

/** Called once per op by the op table (ops.ts); the IR itself knows no op. */
export function registerShapeInference(op: string, infer: ShapeInference): void {
  shapeInference.set(op, infer);
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers: Initializer[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private openRegion: Region | undefined;

  constructor(readonly name: string) {}

  private uniqueName(hint: string): string {
    let name = hint;
    while (this.names.has(name)) name = `${hint}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: ElementType, shape: Shape): Value {
    if (this.names.has(name)) throw new Error(`graph ${this.name}: duplicate input name ${name}`);
    const v = new Value(this, this.uniqueName(name), dtype, shape, 'input');
    this.inputs.push(v);
    return v;
  }

  initializer(name: string, dtype: ElementType, shape: Shape, data: InitializerData): Value {
    const v = new Value(this, this.uniqueName(name), dtype, shape, 'initializer');
    this.initializers.push({ value: v, data });
    return v;
  }

  output(value: Value, name: string): Value {
    // ONNX names graph outputs by value name; route through Identity so the public name is stable
    // and the same value can be exposed twice.
    const [out] = this.node('Identity', [value], {}, { names: [name] });
    if (out.name !== name) throw new Error(`graph ${this.name}: output name ${name} is already taken`);
    this.outputs.push(out);
    return out;
  }

  /** Adds one node; output dtypes and shapes come from the op's registered shape inference. */
  node(
    op: string,
    inputs: readonly (Value | undefined)[],
    attrs: Attrs = {},
    opts: { domain?: string; names?: string[] } = {},
  ): Value[] {
    for (const v of inputs) {
      if (v && v.graph !== this)
        throw new Error(`value ${v.name} belongs to graph ${v.graph.name}, not ${this.name}`);
    }
    const infer = shapeInference.get(op);
    if (!infer) throw new Error(`no shape inference registered for op ${op}`);
    const inferred = infer(inputs, attrs);
    const outputs = inferred.map(
      (o, i) =>
        new Value(
          this,
          this.uniqueName(opts.names?.[i] ?? `${op.toLowerCase()}`),
          o.dtype,
          o.shape,
          'intermediate',
        ),
    );
    const node: Node = { op, domain: opts.domain ?? '', inputs, outputs, attrs, region: this.openRegion };
    for (const o of outputs) o.producer = node;
    this.nodes.push(node);
    return outputs;
  }

  /**
   * Builds the nodes of `body` as one differentiable unit with the gradient `grad`. Autodiff then
   * calls `grad` instead of walking the nodes inside.
   */
  region(
    name: string,
    inputs: readonly Value[],
    body: () => Value[],
    grad: (outputs: readonly Value[]) => RegionGrad,
  ): Value[] {
    if (this.openRegion) return body(); // nested regions: the outer one owns the gradient
    const region: Region = { name, inputs, outputs: [], grad: () => [] };
    this.openRegion = region;
    let outputs: Value[];
    try {
      outputs = body();
    } finally {
      this.openRegion = undefined;
    }
    region.outputs = outputs;
    (region as { grad: RegionGrad }).grad = grad(outputs);
    return outputs;
  }
}

export function staticShape(shape: Shape, what = 'value'): number[] {
  return shape.map((d) => {
    if (typeof d !== 'number') throw new Error(`${what}: needs a static shape, has symbolic dim ${d}`);
    return d;
  });
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
