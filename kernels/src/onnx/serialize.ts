// Graph IR -> ONNX ModelProto bytes. Field numbers follow onnx/onnx.proto (IR version 8 schema).
// Frozen weights are written as external data (a file beside the model), so a model's graph stays
// a few hundred kilobytes however large the base model is.

import type { Attrs, AttrValue, Dim, Graph, Value } from '../graph/ir.ts';
import { ONNX_DTYPE_CODES } from '../graph/ops.ts';
import { ProtoWriter } from './protobuf.ts';

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 18;
export const MS_OPSET = 1;

const AttrType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

function writeAttr(w: ProtoWriter, name: string, value: AttrValue): void {
  w.message(5, (a) => {
    a.string(1, name);
    if (typeof value === 'number') {
      if (!Number.isInteger(value))
        throw new Error(`attribute ${name}: use { float: x } for float attributes`);
      a.int(20, AttrType.INT).int(3, value);
    } else if (typeof value === 'string') {
      a.int(20, AttrType.STRING).string(4, value);
    } else if (Array.isArray(value)) {
      a.int(20, AttrType.INTS).packedInts(8, value as number[]);
    } else if ('float' in value) {
      a.int(20, AttrType.FLOAT).float(2, value.float);
    } else if ('floats' in value) {
      a.int(20, AttrType.FLOATS).packedFloats(7, value.floats);
    }
  });
}

function writeValueInfo(w: ProtoWriter, field: number, v: Value): void {
  w.message(field, (vi) => {
    vi.string(1, v.name);
    vi.message(2, (type) =>
      type.message(1, (tensor) => {
        tensor.int(1, ONNX_DTYPE_CODES[v.dtype]);
        tensor.message(2, (shape) => {
          for (const d of v.shape as Dim[]) {
            shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
          }
        });
      }),
    );
  });
}

export interface SerializeOptions {
  producer?: string;
  /** Keep value_info for intermediates (shapes help ORT plan memory; costs a little size). */
  valueInfo?: boolean;
}

export function serializeModel(graph: Graph, options: SerializeOptions = {}): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, ONNX_IR_VERSION);
  w.string(2, options.producer ?? 'fedit');
  w.message(8, (o) => o.string(1, '').int(2, ONNX_OPSET));
  if (graph.nodes.some((n) => n.domain === 'com.microsoft')) {
    w.message(8, (o) => o.string(1, 'com.microsoft').int(2, MS_OPSET));
  }
  w.message(7, (g) => {
    graph.nodes.forEach((node, i) => {
      g.message(1, (n) => {
        for (const v of node.inputs) n.string(1, v ? v.name : '');
        for (const v of node.outputs) n.string(2, v.name);
        n.string(3, `${node.op}_${i}`);
        n.string(4, node.op);
        for (const [k, v] of Object.entries(node.attrs as Attrs)) writeAttr(n, k, v);
        if (node.domain) n.string(7, node.domain);
      });
    });
    g.string(2, graph.name);
    for (const init of graph.initializers) {
      g.message(5, (t) => {
        for (const d of init.value.shape) t.int(1, d as number);
        t.int(2, ONNX_DTYPE_CODES[init.value.dtype]);
        t.string(8, init.value.name);
        if (init.data.kind === 'inline') {
          t.bytes(9, init.data.bytes);
        } else {
          const { file, offset, length } = init.data;
          t.message(13, (e) => e.string(1, 'location').string(2, file));
          t.message(13, (e) => e.string(1, 'offset').string(2, String(offset)));
          t.message(13, (e) => e.string(1, 'length').string(2, String(length)));
          t.int(14, 1); // data_location = EXTERNAL
        }
      });
    }
    for (const v of graph.inputs) writeValueInfo(g, 11, v);
    for (const v of graph.outputs) writeValueInfo(g, 12, v);
    if (options.valueInfo) {
      for (const node of graph.nodes)
        for (const v of node.outputs) if (!graph.outputs.includes(v)) writeValueInfo(g, 13, v);
    }
  });
  return w.finish();
}
