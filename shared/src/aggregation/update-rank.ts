// Updates of a lower LoRA rank than the federation's: a participant with less memory trains rank
// r_k < r. Only a rule whose arithmetic is exact for such updates takes them
// (AggregationRule.takesLowerRanks: product-svd stacks s_k B_k A_k of any r_k <= r, FLoRA-style);
// every other rule combines the updates tensor by tensor and needs the global shapes, and is never
// given a zero-padded update instead: averaging FedIT's A and B with zero rows and columns would
// shrink every other participant's components toward zero without saying so.
//
// An update is rank r_k when every module's lora_A is [r_k, in] and lora_B [out, r_k], one r_k for
// all of its tensors, 1 <= r_k <= r. Its scale is PEFT's alpha / r_k, alpha being the federation's:
// the participant trained the global adapter truncated to r_k (truncateAdapterRank, which keeps
// the delta (alpha / r_k) B' A' equal to the top r_k components of (alpha / r) B A), so its
// distance from the round's start (norm bound, clipping, FFA-LoRA's frozen A) is measured from
// that truncation, globalAtRank, which coordinator and auditor compute alike.

import { parsePeftLoraTensorName } from '../adapter/names.ts';
import { numel } from '../tensors/tensor.ts';
import { AggregationError } from './aggregation-error.ts';
import { schemaAtRank } from './lora-modules.ts';
import { truncateAdapterRank } from './product-svd.ts';
import type { UpdateValues } from './rule.ts';
import { aggregationRule, aggregationRuleNames } from './rules.ts';
import type { AdapterSchema, TensorValues } from './schema.ts';

/** Whether the rule called `rule` takes updates of a rank below the federation's (false if unknown). */
export function ruleTakesLowerRanks(rule: string | undefined): boolean {
  if (rule === undefined || !aggregationRuleNames().includes(rule)) return false;
  return aggregationRule(rule).takesLowerRanks === true;
}

/**
 * The rank r_k of an update whose tensors have `shapes` (same names as the global schema, which
 * the caller checks), or undefined when they are the global shapes. Throws AggregationError naming
 * the tensor: AGGREGATION_SHAPE when a shape is not the global one at some rank 1..r,
 * AGGREGATION_RANK when the tensors are of different ranks or `rule` takes no lower rank.
 */
export function lowerRankOf(
  global: AdapterSchema,
  shapes: AdapterSchema,
  rule: string | undefined,
): number | undefined {
  const rank = updateRankOf(global, shapes);
  if (rank === undefined || ruleTakesLowerRanks(rule)) return rank;
  const [name, globalShape] = [...global].find(([n, shape]) => !sameShape(shapes.get(n), shape))!;
  const takers = aggregationRuleNames().filter((n) => ruleTakesLowerRanks(n));
  throw new AggregationError(
    'AGGREGATION_RANK',
    `${name} has shape [${shapes.get(name)}], the global adapter's is [${globalShape}]: a rank-${rank} update, and ${rule === undefined ? "this federation's rule" : `rule ${rule}`} aggregates only the federation's rank (rules that take lower ranks: ${takers.join(', ')})`,
  );
}

/** lowerRankOf whatever the rule: the rank `shapes` are of, checked, or undefined for the global shapes. */
export function updateRankOf(global: AdapterSchema, shapes: AdapterSchema): number | undefined {
  const differing = [...global].filter(([name, shape]) => !sameShape(shapes.get(name), shape));
  if (differing.length === 0) return undefined;
  const [firstName, firstGlobalShape] = differing[0];
  const shapeProblem = (name: string, globalShape: readonly number[]) =>
    new AggregationError(
      'AGGREGATION_SHAPE',
      `${name} has shape [${shapes.get(name) ?? globalShape}], the global adapter's is [${globalShape}]`,
    );
  for (const [name, globalShape] of differing) {
    const rank = factorRank(name, shapes.get(name) ?? globalShape, globalShape);
    const globalRank = factorRank(name, globalShape, globalShape);
    if (rank === undefined || globalRank === undefined || rank > globalRank)
      throw shapeProblem(name, globalShape);
  }
  let first: { name: string; rank: number } | undefined;
  for (const [name, globalShape] of global) {
    const shape = shapes.get(name) ?? globalShape;
    const rank = factorRank(name, shape, globalShape);
    if (rank === undefined) throw shapeProblem(firstName, firstGlobalShape);
    first ??= { name, rank };
    if (rank !== first.rank) {
      throw new AggregationError(
        'AGGREGATION_RANK',
        `${name} has shape [${shape}] (rank ${rank}) but ${first.name} is rank ${first.rank}: every tensor of one update has the same LoRA rank`,
      );
    }
  }
  return first!.rank;
}

/**
 * lowerRankOf for an update known by its values alone (as the round pipeline loads them): each
 * factor's shape is inferred from its length and the global adapter's in/out features. A length
 * that fits no rank keeps the global shape, so that validateUpdate reports it.
 */
export function lowerRankOfValues(
  global: AdapterSchema,
  values: UpdateValues,
  rule: string | undefined,
): number | undefined {
  const shapes = new Map<string, readonly number[]>();
  for (const [name, globalShape] of global) {
    const length = values.get(name)?.length;
    shapes.set(name, length === undefined ? globalShape : inferredShape(name, length, globalShape));
  }
  return lowerRankOf(global, shapes, rule);
}

/** The schema an update of rank `rank` (undefined: the global one) must match. */
export function schemaForRank(global: AdapterSchema, rank: number | undefined): AdapterSchema {
  return rank === undefined ? global : schemaAtRank(global, rank);
}

/**
 * What an update of rank `rank` trained from: the global adapter itself (rank undefined), or its
 * truncation to `rank` (truncateAdapterRank, deterministic to the bit).
 */
export function globalAtRank(
  global: TensorValues,
  schema: AdapterSchema,
  rank: number | undefined,
): TensorValues {
  return rank === undefined ? global : truncateAdapterRank(global, schema, rank);
}

/** The LoRA rank a factor of `shape` has where the global factor is `globalShape`; undefined if none. */
function factorRank(
  name: string,
  shape: readonly number[],
  globalShape: readonly number[],
): number | undefined {
  const parsed = parsePeftLoraTensorName(name);
  if (!parsed || shape.length !== 2 || globalShape.length !== 2) return undefined;
  // lora_A is [r, in], lora_B [out, r]: the rank axis may differ, the other must not.
  const [rankAxis, keptAxis] = parsed.factor === 'A' ? [0, 1] : [1, 0];
  if (shape[keptAxis] !== globalShape[keptAxis]) return undefined;
  const rank = shape[rankAxis];
  return Number.isSafeInteger(rank) && rank >= 1 ? rank : undefined;
}

function inferredShape(name: string, length: number, globalShape: readonly number[]): readonly number[] {
  const parsed = parsePeftLoraTensorName(name);
  if (!parsed || globalShape.length !== 2 || length === numel(globalShape)) return globalShape;
  if (parsed.factor === 'A') {
    const rank = length / globalShape[1];
    return Number.isInteger(rank) ? [rank, globalShape[1]] : globalShape;
  }
  const rank = length / globalShape[0];
  return Number.isInteger(rank) ? [globalShape[0], rank] : globalShape;
}

function sameShape(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}
