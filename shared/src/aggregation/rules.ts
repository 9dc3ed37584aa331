// The registry of aggregation rules. A rule is added here, in source, never at run time: an
// auditor's copy of fedit must know every rule a log can name.

import { AggregationError } from './aggregation-error.ts';
import type { AggregationConfig, AggregationRule, WeightedUpdate } from './rule.ts';
import {
  parseRuleSettings,
  ruleConfigOf,
  type RuleOption,
  type RuleSettings,
  type RuleSources,
} from './rule-settings.ts';
import type { AdapterSchema } from './schema.ts';
import { WeightedMeanAccumulator, type WeightPolicy } from './weighted-mean.ts';
import type { Values64 } from './clipping.ts';
import { coordinateMedian, multiKrumMean, trimmedMean } from './robust.ts';
import { productSvdAdapter } from './product-svd.ts';

/** A rule's settings parser: the common settings plus the rule's own `options`. */
function settingsOf(name: string, options: readonly RuleOption[]) {
  return (config: AggregationConfig): RuleSettings => parseRuleSettings(name, config, options);
}

/** The weighted mean of the updates, streaming: one adapter's sums in memory. */
function meanOf(policy: WeightPolicy) {
  return (updates: Iterable<WeightedUpdate>, schema: AdapterSchema) => {
    const accumulator = new WeightedMeanAccumulator(schema, policy);
    for (const u of updates) accumulator.addValidated(u.values, u.weight);
    return accumulator.target();
  };
}

/**
 * FedIT (Zhang et al., "Towards Building the Federated GPT"; Shepherd's model_aggregation): the
 * next global adapter is sum_k (n_k / sum_j n_j) * update_k, tensor by tensor, so lora_A and
 * lora_B are averaged separately. n_k is participant k's example count (capped by weightCap when
 * the federation sets one). The default rule.
 */
export const feditRule: AggregationRule = {
  name: 'fedit',
  description: 'FedIT: example-count-weighted mean of every LoRA tensor (A and B averaged separately)',
  options: [],
  settings: settingsOf('fedit', []),
  combine: meanOf('example-count'),
};

/** FedAvg with equal weights: the plain mean of the updates, whatever their example counts. */
export const fedavgUniformRule: AggregationRule = {
  name: 'fedavg-uniform',
  description: 'unweighted mean of every LoRA tensor; example counts are ignored',
  options: [],
  settings: settingsOf('fedavg-uniform', []),
  combine: meanOf('uniform'),
};

/** Every update of the round, widened to binary64: the robust rules need them all at once. */
function collect(updates: Iterable<WeightedUpdate>): Values64[] {
  const all: Values64[] = [];
  for (const u of updates) {
    all.push(
      new Map([...u.values].map(([name, v]) => [name, v instanceof Float64Array ? v : Float64Array.from(v)])),
    );
  }
  return all;
}

/**
 * Coordinate-wise median (Yin et al. 2018): each value of the next adapter is the median of the
 * updates' values at that position (robust.ts has the arithmetic). Example counts are ignored, so
 * a participant claiming many examples gains nothing; holds every update of the round in memory.
 */
export const medianRule: AggregationRule = {
  name: 'median',
  description: 'coordinate-wise median of the updates (robust to a minority of poisoned updates)',
  options: [],
  settings: settingsOf('median', []),
  combine: (updates, schema) => coordinateMedian(collect(updates), schema),
};

/** Coordinate-wise trimmed mean (Yin et al. 2018): drops trimFraction of the values at each end. */
export const trimmedMeanRule: AggregationRule = {
  name: 'trimmed-mean',
  description: 'coordinate-wise mean after dropping the highest and lowest trimFraction of values',
  options: ['trimFraction'],
  settings: settingsOf('trimmed-mean', ['trimFraction']),
  combine: (updates, schema, settings) => trimmedMean(collect(updates), schema, settings.trimFraction!),
};

/**
 * (Multi-)Krum (Blanchard et al. 2017; El Mhamdi et al. 2018): the krumSelect updates closest to
 * their neighbours, tolerating `byzantine` poisoned ones, averaged with equal weights. Krum needs
 * K >= 2f + 3 updates; a round with fewer tolerates f' = max(0, floor((K - 3) / 2)) instead, and
 * one with fewer than 3 (where nobody can be told apart) takes the plain mean. At most K - f'
 * updates are selected.
 */
export const krumRule: AggregationRule = {
  name: 'krum',
  description: 'mean of the krumSelect updates with the lowest Krum scores (needs K >= 2*byzantine + 3)',
  options: ['byzantine', 'krumSelect'],
  settings: settingsOf('krum', ['byzantine', 'krumSelect']),
  combine: (updates, schema, settings) => {
    const all = collect(updates);
    const k = all.length;
    const byzantine = Math.max(0, Math.min(settings.byzantine!, Math.floor((k - 3) / 2)));
    if (k < 3)
      return meanOf('uniform')(
        all.map((values) => ({ participant: '', weight: 1, values })),
        schema,
      );
    return multiKrumMean(all, schema, byzantine, Math.min(settings.krumSelect!, k - byzantine));
  },
};

/**
 * Product-space aggregation: per LoRA module, the weighted mean of the updates' products
 * sum_k w_k (alpha/r) B_k A_k / W, re-factored to the federation's rank by truncated SVD
 * (product-svd.ts), so the next adapter's delta is the best rank-r approximation of the mean
 * delta, not mean(B) mean(A) with its cross terms. Holds every update of the round in memory.
 * Exact for updates of any rank r_k <= r, each at its own scale alpha/r_k (FLoRA's stacking): a
 * participant with less memory trains a lower rank (update-rank.ts).
 */
export const productSvdRule: AggregationRule = {
  name: 'product-svd',
  description:
    'mean of the updates B·A per module, re-factored to the federation rank by truncated SVD; takes updates of any rank r_k <= r (scale alpha/r_k)',
  options: ['rank', 'alpha'],
  takesLowerRanks: true,
  refactors: true,
  settings: settingsOf('product-svd', ['rank', 'alpha']),
  combine: (updates, schema, settings) => {
    const all = [...updates].map((u) => ({
      values: u.values,
      weight: u.weight,
      label: `participant ${u.participant}`,
    }));
    const result = productSvdAdapter(all, schema, { rank: settings.rank!, alpha: settings.alpha! });
    return new Map([...result].map(([name, v]) => [name, Float64Array.from(v)]));
  },
};

const RULES: ReadonlyMap<string, AggregationRule> = new Map(
  [feditRule, fedavgUniformRule, medianRule, trimmedMeanRule, krumRule, productSvdRule].map((rule) => [
    rule.name,
    rule,
  ]),
);

/** The default rule of a federation. */
export const DEFAULT_AGGREGATION_RULE = feditRule.name;

/** Names of every rule, sorted. */
export function aggregationRuleNames(): string[] {
  return [...RULES.keys()].sort();
}

/** The rule called `name`; throws AggregationError listing the known rules when there is none. */
export function aggregationRule(name: string): AggregationRule {
  const rule = RULES.get(name);
  if (!rule) {
    throw new AggregationError(
      'AGGREGATION_UNKNOWN_RULE',
      `unknown aggregation rule ${JSON.stringify(name)}; known rules: ${aggregationRuleNames().join(', ')}`,
    );
  }
  return rule;
}

/**
 * The rule and rule config every round of a federation records (round-open and round-closed):
 * derived from its config alone, so the coordinator and an auditor derive the same. Throws
 * AggregationError for a rule this fedit does not know.
 */
export function ruleRefFor(config: RuleSources): { name: string; config: AggregationConfig } {
  const rule = aggregationRule(config.aggregation.rule);
  return { name: rule.name, config: ruleConfigOf(config, rule.options) };
}
