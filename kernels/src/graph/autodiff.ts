// Reverse-mode automatic differentiation over the IR: walk the forward nodes backwards, ask the op
// table (ops.ts) for each node's gradient rule, and add up gradients where paths meet. Only nodes
// that lie between the trainable values and the loss are differentiated, so frozen base weights
// cost no weight-gradient work at all.

import type { Node, Region, Value } from './ir.ts';
import { add, constant } from './ops.ts';
import { gradientRule } from './ops.ts';

type Unit =
  | { kind: 'node'; node: Node; inputs: readonly (Value | undefined)[]; outputs: readonly Value[] }
  | { kind: 'region'; region: Region; inputs: readonly (Value | undefined)[]; outputs: readonly Value[] };

function unitsOf(nodes: readonly Node[]): Unit[] {
  const units: Unit[] = [];
  const seen = new Set<Region>();
  for (const node of nodes) {
    if (node.region) {
      if (!seen.has(node.region)) {
        seen.add(node.region);
        units.push({
          kind: 'region',
          region: node.region,
          inputs: node.region.inputs,
          outputs: node.region.outputs,
        });
      }
    } else {
      units.push({ kind: 'node', node, inputs: node.inputs, outputs: node.outputs });
    }
  }
  // A region's unit must come where its last node stood, after everything its inputs depend on;
  // since region bodies are built in one go, their first node's position is already correct.
  return units;
}

/** Returns d(loss)/d(v) for each v in `wrt`, as new nodes in the same graph. `loss` must be a scalar. */
export function gradients(loss: Value, wrt: readonly Value[]): Value[] {
  if (loss.rank !== 0) throw new Error(`gradients: the loss must be a scalar, got ${loss}`);
  const graph = loss.graph;
  const units = unitsOf(graph.nodes);

  const requiresGrad = new Set<Value>(wrt);
  for (const u of units) {
    if (u.inputs.some((v) => v && requiresGrad.has(v))) for (const o of u.outputs) requiresGrad.add(o);
  }
  const reachesLoss = new Set<Value>([loss]);
  for (let i = units.length - 1; i >= 0; i--) {
    const u = units[i];
    if (u.outputs.some((o) => reachesLoss.has(o))) for (const v of u.inputs) if (v) reachesLoss.add(v);
  }

  const grads = new Map<Value, Value>();
  grads.set(loss, constant(graph, [1], loss.dtype));
  const accumulate = (v: Value, g: Value) => {
    const prev = grads.get(v);
    grads.set(v, prev ? add(prev, g) : g);
  };

  for (let i = units.length - 1; i >= 0; i--) {
    const u = units[i];
    const dOutputs = u.outputs.map((o) => grads.get(o));
    if (dOutputs.every((g) => g === undefined)) continue;
    const needs = u.inputs.map((v) => v !== undefined && requiresGrad.has(v) && reachesLoss.has(v));
    if (!needs.some(Boolean)) continue;
    let dInputs: (Value | undefined)[];
    if (u.kind === 'region') {
      dInputs = u.region.grad(dOutputs, needs);
    } else {
      const rule = gradientRule(u.node.op);
      if (!rule)
        throw new Error(`gradients: op ${u.node.op} has no gradient rule (value ${u.outputs[0]?.name})`);
      dInputs = rule(u.node, dOutputs, needs);
    }
    u.inputs.forEach((v, j) => {
      const g = dInputs[j];
      if (v && needs[j] && g) accumulate(v, g);
    });
  }

  return wrt.map((v) => {
    const g = grads.get(v);
    if (!g) throw new Error(`gradients: ${v.name} does not affect the loss`);
    return g;
  });
}
