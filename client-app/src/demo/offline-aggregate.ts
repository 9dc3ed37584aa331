// The offline demo's round close, computed as the federation computes it: the rule the demo
// federation is configured with, through shared's aggregateContributions (the coordinator's own
// computation at round close, which an auditor repeats), participants added in canonical order.
// An offline FedIT row and a federated round thus differ in what was trained, never in how it was
// averaged (float64 sums in canonical order, one rounding to float32: see
// shared/src/aggregation/weighted-mean.ts).

import { loraTensorSpecs, type LlamaConfig, type LoraConfig } from '@fedit/kernels';
import { aggregateContributions, compareUtf8, type AdapterSchema, type TensorValues } from '@fedit/shared';
import { DEMO_AGGREGATION } from './federation-settings.ts';

/** One participant's trained adapter in an offline round. */
export interface OfflineUpdate {
  /** Who trained it: updates are added in ascending order of this id, as the coordinator adds them. */
  participant: string;
  tensors: TensorValues;
  /** Training examples (the weight the FedIT rule gives the update). */
  examples: number;
}

/**
 * The LoRA adapter's schema for `model`: tensor names and shapes in canonical name order, as the
 * coordinator reads them off the global adapter it stores.
 */
export function loraAdapterSchema(model: LlamaConfig, lora: LoraConfig): AdapterSchema {
  const specs = loraTensorSpecs(model, lora).sort((a, b) => compareUtf8(a.name, b.name));
  return new Map(specs.map((s) => [s.name, s.shape]));
}

/**
 * The next global adapter from one offline round's updates, as the coordinator closes a round:
 * the demo federation's rule (with the empty rule config the coordinator passes) over the updates
 * in canonical order.
 */
export function aggregateOfflineRound(
  schema: AdapterSchema,
  updates: readonly OfflineUpdate[],
): Map<string, Float32Array> {
  return aggregateContributions(
    DEMO_AGGREGATION.rule,
    {},
    schema,
    updates.map((u) => ({ participant: u.participant, exampleCount: u.examples, update: u.tensors })),
  );
}
