// How long product-space aggregation (productSvdAdapter) takes on the coordinator, for the demo's
// adapter and for a SmolLM2-135M-like one, beside FedIT's weighted mean of the same updates.
//   node --conditions=source --import tsx shared/bench/product-svd.ts [--json]
// Updates are seeded random factors (the cost does not depend on the values: the Jacobi sweeps
// vary by one or two with them); times are the median of `repeats` runs, one thread, wall clock
// and CPU time of this process.

import { performance } from 'node:perf_hooks';
import { feditRule, productSvdAdapter, type AdapterSchema } from '@fedit/shared';

interface Shape {
  name: string;
  layers: number;
  /** target -> [out, in] */
  targets: Record<string, [number, number]>;
  rank: number;
  participants: number;
  repeats: number;
}

const DEMO: Shape = {
  name: 'demo (hidden 128, intermediate 256, 2 layers, 7 targets, rank 8, 3 participants)',
  layers: 2,
  targets: {
    'self_attn.q_proj': [128, 128],
    'self_attn.k_proj': [128, 128],
    'self_attn.v_proj': [128, 128],
    'self_attn.o_proj': [128, 128],
    'mlp.gate_proj': [256, 128],
    'mlp.up_proj': [256, 128],
    'mlp.down_proj': [128, 256],
  },
  rank: 8,
  participants: 3,
  repeats: 5,
};

const SMOLLM2: Shape = {
  name: 'SmolLM2-135M-like (hidden 576, intermediate 1536, 30 layers, q/v targets, rank 16, 10 participants)',
  layers: 30,
  targets: { 'self_attn.q_proj': [576, 576], 'self_attn.v_proj': [192, 576] },
  rank: 16,
  participants: 10,
  repeats: 3,
};

function schemaOf(shape: Shape): AdapterSchema {
  const entries: [string, number[]][] = [];
  for (let layer = 0; layer < shape.layers; layer++) {
    for (const [target, [out, inF]] of Object.entries(shape.targets)) {
      const path = `base_model.model.model.layers.${layer}.${target}`;
      entries.push(
        [`${path}.lora_A.weight`, [shape.rank, inF]],
        [`${path}.lora_B.weight`, [out, shape.rank]],
      );
    }
  }
  return new Map(entries.sort(([x], [y]) => (x < y ? -1 : 1)));
}

function randomUpdate(schema: AdapterSchema, seed: number): Map<string, Float32Array> {
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31 - 0.5;
  };
  return new Map(
    [...schema].map(([name, [rows, cols]]) => [name, Float32Array.from({ length: rows * cols }, next)]),
  );
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function measure(shape: Shape) {
  const schema = schemaOf(shape);
  const updates = Array.from({ length: shape.participants }, (_, k) => ({
    values: randomUpdate(schema, k + 1),
    weight: 100 + k,
  }));
  const updateBytes = [...updates[0].values.values()].reduce((sum, v) => sum + v.byteLength, 0);
  const productMs: number[] = [];
  const productCpuMs: number[] = [];
  const meanMs: number[] = [];
  for (let r = 0; r < shape.repeats; r++) {
    let start = performance.now();
    const cpu = process.cpuUsage();
    productSvdAdapter(updates, schema, { rank: shape.rank, alpha: 2 * shape.rank });
    productMs.push(performance.now() - start);
    const used = process.cpuUsage(cpu);
    productCpuMs.push((used.user + used.system) / 1000);
    start = performance.now();
    const accumulator = feditRule.createAccumulator(schema, {});
    for (const { values, weight } of updates) accumulator.add(values, weight);
    accumulator.result();
    meanMs.push(performance.now() - start);
  }
  return {
    shape: shape.name,
    modules: schema.size / 2,
    stackedRank: shape.participants * shape.rank,
    productSvdMs: Math.round(median(productMs)),
    // CPU time is what a loaded machine (other processes on the same cores) distorts least.
    productSvdCpuMs: Math.round(median(productCpuMs)),
    productSvdMsPerModule: Number((median(productMs) / (schema.size / 2)).toFixed(2)),
    weightedMeanMs: Number(median(meanMs).toFixed(1)),
    updateBytes,
    // productSvdAdapter needs every update of the round at once (stacking), not a running sum.
    heldUpdateBytes: updateBytes * shape.participants,
    repeats: shape.repeats,
  };
}

const results = [DEMO, SMOLLM2].map(measure);
if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
else
  for (const r of results)
    process.stdout.write(
      `${Object.entries(r)
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n')}\n\n`,
    );
