// Aggregation rules as named strategies, in the manner of Flower's: a rule is chosen by name in the
// federation config, named in every round record, and turns the round's updates into the next
// global adapter. The surface is small on purpose: validate a config, start an accumulator, feed
// it one update at a time, read the result.
//
// An update is a participant's trained LoRA tensors (not their difference from the global
// adapter), decoded to Float32, keyed by PEFT tensor name. Its weight is the participant's
// example count; each rule decides what to make of it.
//
// Accumulators are streaming: they keep running sums of adapter size, never the updates, so a
// round with a thousand participants needs the memory of one adapter's sums plus the update being
// added. Results depend on the order updates are added only through floating-point rounding; the
// canonical order, the one the coordinator uses and an auditor repeats, is ascending participant
// id (compareParticipantIds), so a recomputation is bit-identical.

import type { AdapterSchema, TensorValues } from './schema.ts';

/** A rule's settings as they appear in round records: JSON with integer or string values only. */
export type AggregationConfig = Readonly<Record<string, AggregationConfigValue>>;
export type AggregationConfigValue =
  | string
  | number
  | boolean
  | null
  | readonly AggregationConfigValue[]
  | { readonly [key: string]: AggregationConfigValue };

export interface Accumulator {
  /**
   * Adds one participant's update with its weight (the participant's example count). Throws
   * AggregationError naming the tensor when the update does not fit the schema or holds a
   * non-finite value, and leaves the accumulator unchanged in that case.
   */
  add(update: TensorValues, weight: number): void;
  /** The aggregate of the updates added so far, by tensor name in schema order; fresh arrays. */
  result(): Map<string, Float32Array>;
  /** Number of updates added. */
  readonly count: number;
  /** Sum of the weights the rule counted (for fedavg-uniform, the number of updates). */
  readonly totalWeight: number;
  /** Bytes of running state the accumulator holds: fixed by the schema, not by `count`. */
  readonly stateBytes: number;
}

export interface AggregationRule {
  /** The name federation configs and round records use. */
  readonly name: string;
  /** One line for people choosing a rule. */
  readonly description: string;
  /** Throws AggregationError('AGGREGATION_CONFIG') unless `config` is a valid config of this rule. */
  checkConfig(config: AggregationConfig): void;
  /** A fresh accumulator for one round. Checks `config` first. */
  createAccumulator(schema: AdapterSchema, config: AggregationConfig): Accumulator;
}

const encoder = new TextEncoder();

/**
 * The canonical order of participants: ascending UTF-8 bytes of their ids (= code point order,
 * which Python's and Rust's string comparisons also use; JS's default sort compares UTF-16 code
 * units and differs for characters above U+FFFF).
 */
export function compareParticipantIds(a: string, b: string): number {
  return compareUtf8(a, b);
}

/** Ascending order of the strings' UTF-8 bytes. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(encoder.encode(a), encoder.encode(b));
}
