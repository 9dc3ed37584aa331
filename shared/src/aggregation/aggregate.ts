import { AggregationError } from './aggregation-error.ts';
import { aggregationRule } from './rules.ts';
import { compareParticipantIds, type AggregationConfig } from './rule.ts';
import type { AdapterSchema, TensorValues } from './schema.ts';

/** One participant's counted contribution to a round. */
export interface Contribution {
  participant: string;
  exampleCount: number;
  /** The update's values, or a function that loads them (so only one is in memory at a time). */
  update: TensorValues | (() => TensorValues);
}

/**
 * Aggregates `contributions` with the rule called `ruleName`, adding them in canonical order
 * (ascending participant id), one at a time: the same computation the coordinator performs at the
 * end of a round and an auditor repeats. Loaders are called in that order, each result dropped
 * before the next is loaded.
 */
export function aggregateContributions(
  ruleName: string,
  config: AggregationConfig,
  schema: AdapterSchema,
  contributions: readonly Contribution[],
): Map<string, Float32Array> {
  const accumulator = aggregationRule(ruleName).createAccumulator(schema, config);
  const ordered = [...contributions].sort((a, b) => compareParticipantIds(a.participant, b.participant));
  for (const { participant, exampleCount, update } of ordered) {
    const values = typeof update === 'function' ? update() : update;
    try {
      accumulator.add(values, exampleCount);
    } catch (err) {
      if (!(err instanceof AggregationError)) throw err;
      throw new AggregationError(err.code, `participant ${participant}: ${err.message}`, { cause: err });
    }
  }
  return accumulator.result();
}
