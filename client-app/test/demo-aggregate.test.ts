// The offline proof's rounds close as the demo federation's rounds do: the rule the federation is
// configured with, through shared's aggregateContributions, participants in canonical order,
// float64 sums and one rounding to float32 — so an offline FedIT row is computed exactly as the
// coordinator computes a round (the float32 mean the demo once used offline was not).

import test from 'ava';
import { loraTensorSpecs } from '@fedit/kernels';
import { DEFAULT_SETTINGS } from '@fedit/coordinator';
import {
  adapterSchema,
  aggregateContributions,
  hashTensors,
  tensorFromF32,
  tensorsFromValues,
  validateFederationConfig,
  type AdapterSchema,
} from '@fedit/shared';
import { DEFAULT_DEMO_BASE_RECIPE, demoModelConfig } from '../src/demo/base-model.ts';
import { demoFederationSettings } from '../src/demo/federation-settings.ts';
import {
  aggregateOfflineRound,
  loraAdapterSchema,
  type OfflineUpdate,
} from '../src/demo/offline-aggregate.ts';
import { DEMO_LORA } from '../src/demo/train.ts';

const schema: AdapterSchema = new Map([
  ['base_model.model.layers.0.q_proj.lora_A.weight', [2, 3]],
  ['base_model.model.layers.0.q_proj.lora_B.weight', [3, 2]],
]);

/** A tiny adapter of `schema` with values of every magnitude, from a fixed seed. */
function tinyAdapter(seed: number): Map<string, Float32Array> {
  let state = seed;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state / 2 ** 32 - 0.5) * 10 ** ((state % 7) - 3);
  };
  return new Map(
    [...schema].map(([name, [rows, cols]]) => [name, Float32Array.from({ length: rows * cols }, next)]),
  );
}

// Given out of canonical order, with example counts that make the weights matter.
const updates: OfflineUpdate[] = [
  { participant: 'participant-3', tensors: tinyAdapter(3), examples: 7 },
  { participant: 'participant-1', tensors: tinyAdapter(1), examples: 3 },
  { participant: 'participant-2', tensors: tinyAdapter(2), examples: 11 },
];

const bits = (values: Float32Array) =>
  Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));

test('an offline round aggregates bit for bit as the coordinator closes a demo federation round', (t) => {
  // The demo federation's config as the coordinator holds it (initFederation: defaults, then the
  // demo's settings), and what its round runner computes at close: the config's rule with the empty
  // rule config over the counted updates, stored as F32 tensors under the adapter's hash.
  const config = validateFederationConfig({
    ...DEFAULT_SETTINGS,
    ...demoFederationSettings(updates.length, 1),
    id: 'fed-demo-aggregate-test',
    baseModel: { identity: `sha256:${'7'.repeat(64)}`, name: 'demo base' },
  });
  const counted = updates.map((u) => ({
    participant: u.participant,
    exampleCount: u.examples,
    update: u.tensors,
  }));
  const coordinator = aggregateContributions(config.aggregation.rule, {}, schema, counted);

  const offline = aggregateOfflineRound(schema, updates);
  for (const name of schema.keys()) t.deepEqual(bits(offline.get(name)!), bits(coordinator.get(name)!), name);
  t.is(hashTensors(tensorsFromValues(schema, offline)), hashTensors(tensorsFromValues(schema, coordinator)));
});

test('the offline aggregate is the example-weighted mean in float64, in canonical order, rounded once', (t) => {
  // weighted-mean.ts's specification, written out: S += w_k * x_k in binary64 in ascending
  // participant order, then float32(S / W).
  const ordered = [...updates].sort((a, b) => (a.participant < b.participant ? -1 : 1));
  const total = ordered.reduce((w, u) => w + u.examples, 0);
  const offline = aggregateOfflineRound(schema, updates);
  for (const [name, [rows, cols]] of schema) {
    const sums = new Float64Array(rows * cols);
    for (const u of ordered) {
      const x = u.tensors.get(name)!;
      for (let i = 0; i < sums.length; i++) sums[i] += u.examples * x[i];
    }
    const expected = Float32Array.from(sums, (s) => s / total);
    t.deepEqual(bits(offline.get(name)!), bits(expected), name);
  }
});

test("the offline schema is the one the coordinator reads off the demo federation's global adapter", (t) => {
  const model = demoModelConfig(DEFAULT_DEMO_BASE_RECIPE, 64, { bos: 1, eos: 2, pad: 0 });
  // The initial global adapter as initFederationFromModel stores it, and its schema as read back.
  const stored = new Map(
    loraTensorSpecs(model, DEMO_LORA).map((s) => [
      s.name,
      tensorFromF32(s.shape, new Float32Array(s.shape[0] * s.shape[1])),
    ]),
  );
  t.deepEqual([...loraAdapterSchema(model, DEMO_LORA)], [...adapterSchema(stored)]);
});
