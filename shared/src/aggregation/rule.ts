// Aggregation rules as named strategies, in the manner of Flower's: a rule is chosen by name in the
// federation config, named with its settings in every round record, and combines the round's
// updates into the target of the next global adapter. What happens around it (frozen-A check,
// weight cap, clipping, server optimizer) is the round pipeline's (aggregate.ts), the same for
// every rule.
//
// An update is a participant's trained LoRA tensors (not their difference from the global
// adapter), keyed by PEFT tensor name; after clipping its values are binary64. Its weight is the
// participant's example count (capped); each rule decides what to make of it.
//
// A rule is given the updates as an iterable it walks once, in the canonical order (ascending
// participant id, compareParticipantIds), each update loaded as it is reached: a streaming rule
// (the weighted mean) holds one update at a time, a rule that needs them all (median, Krum) keeps
// them and says so. Results depend on the order only through floating-point rounding, and the
// order is fixed, so an auditor's recomputation is bit-identical.

import type { RuleOption, RuleSettings } from './rule-settings.ts';
import type { AdapterSchema } from './schema.ts';

/** A rule's settings as they appear in round records: JSON with integer or string values only. */
export type AggregationConfig = Readonly<Record<string, AggregationConfigValue>>;
export type AggregationConfigValue =
  | string
  | number
  | boolean
  | null
  | readonly AggregationConfigValue[]
  | { readonly [key: string]: AggregationConfigValue };

/** binary64 or float32 values of one update, by tensor name. */
export type UpdateValues = ReadonlyMap<string, Float32Array | Float64Array>;

/** One update as a rule sees it: validated, clipped, with its (capped) weight. */
export interface WeightedUpdate {
  participant: string;
  weight: number;
  values: UpdateValues;
}

export interface AggregationRule {
  /** The name federation configs and round records use. */
  readonly name: string;
  /** One line for people choosing a rule. */
  readonly description: string;
  /** The settings of this rule's own beyond the common ones (rule-settings.ts). */
  readonly options: readonly RuleOption[];
  /**
   * Whether the rule is exact for updates of a LoRA rank r_k below the federation's (update-rank.ts):
   * only such a rule is given them; every other one is given only the global shapes.
   */
  readonly takesLowerRanks?: boolean;
  /**
   * Whether the new global adapter's factors are a new basis (a re-factoring), not an average of
   * the participants' factors: then per-factor state carried across rounds (SCAFFOLD's control
   * variates) would not line up with the next round's factors, so such a rule refuses it.
   */
  readonly refactors?: boolean;
  /**
   * The settings a record's config holds for this rule; throws AggregationError
   * ('AGGREGATION_CONFIG') naming the setting when it is not a valid config of this rule.
   */
  settings(config: AggregationConfig): RuleSettings;
  /** Combines the updates (canonical order, walked once) into the target adapter, in binary64. */
  combine(
    updates: Iterable<WeightedUpdate>,
    schema: AdapterSchema,
    settings: RuleSettings,
  ): Map<string, Float64Array>;
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
