// A secure round's plan: the parts every party derives alike from the secagg-keys record (U1 and
// the advertised keys), the federation's secureAggregation settings and the round-open record.
//
//   secure ids   participant at index q of `advertised` (sorted by participant id) is q + 1
//   graph        settings.graph 'complete': every pair (degree n − 1); 'secagg+': graph.ts's
//                secAggPlusGraph over the ids 1..n with degree settings.degree, or
//                secAggPlusDegree(n) when it sets none (a degree >= n − 1 is the complete graph),
//                and the seed of commitments.ts's graphSeedOf(round-open hash)
//   holders      H_i = {i} ∪ N(i), ascending; the holder at position q holds the shares at x = q + 1
//   threshold    secure-aggregation.ts's secureThreshold(thresholdFraction, min |H_i|)
//
// planOf checks a record's graph and threshold against what the settings give: a coordinator that
// records another seed, degree or threshold is refused by every participant and named by the audit.

import { compareUtf8 } from '../../aggregation/rule.ts';
import { secureThreshold, type SecureAggregationSettings } from '../../federation/secure-aggregation.ts';
import type { SecaggKeysBody } from '../../rounds/record.ts';
import { completeGraph, secAggPlusDegree, secAggPlusGraph, type MaskGraph } from '../graph.ts';
import { SecAggError } from '../secagg-error.ts';
import { graphSeedOf, unhex } from './commitments.ts';

export type SecaggGraphRef = SecaggKeysBody['graph'];

/** The round's plan; ids are secure ids (1..n). */
export interface SecureRoundPlan {
  /** U1, sorted: participants[id − 1] has secure id `id`. */
  participants: readonly string[];
  idOf: ReadonlyMap<string, number>;
  graph: MaskGraph;
  threshold: number;
  encryptionKeys: ReadonlyMap<number, Uint8Array>;
  maskKeys: ReadonlyMap<number, Uint8Array>;
}

/** The graph reference and threshold the settings give for `count` participants after `roundOpenHash`. */
export function expectedGraph(
  settings: SecureAggregationSettings,
  count: number,
  roundOpenHash: string,
): { graph: SecaggGraphRef; mask: MaskGraph; threshold: number } {
  if (!Number.isInteger(count) || count < 2)
    throw new SecAggError(
      'SECAGG_ABORT',
      `${count} participants advertised keys; a secure round needs at least 2`,
    );
  const ids = Array.from({ length: count }, (_, q) => q + 1);
  const seed = graphSeedOf(roundOpenHash);
  const degree =
    settings.graph === 'complete'
      ? count - 1
      : Math.min(settings.degree ?? secAggPlusDegree(count), count - 1);
  // secAggPlusGraph needs an even degree; n − 1 (odd n − 1 only when capped) is the complete graph.
  const mask =
    settings.graph === 'complete' || degree >= count - 1
      ? completeGraph(ids)
      : secAggPlusGraph(ids, degree, unhex(seed));
  const fewest = Math.min(...[...mask.values()].map((n) => n.length + 1));
  return {
    graph: { kind: settings.graph, degree, seed },
    mask,
    threshold: secureThreshold(settings.thresholdFraction, fewest),
  };
}

/**
 * The plan of a secagg-keys body, after checking that it lists its participants sorted and once,
 * and that its graph and threshold are the settings'. Throws SecAggError naming the field.
 */
export function planOf(
  body: SecaggKeysBody,
  settings: SecureAggregationSettings,
  roundOpenHash: string,
): SecureRoundPlan {
  const participants = body.advertised.map((a) => a.participant);
  participants.forEach((p, q) => {
    if (q > 0 && compareUtf8(participants[q - 1], p) >= 0)
      throw new SecAggError(
        'SECAGG_INPUT',
        `advertised[${q}] (${p}) is not after ${participants[q - 1]}: the list must be sorted, once each`,
      );
  });
  const expected = expectedGraph(settings, participants.length, roundOpenHash);
  const { kind, degree, seed } = body.graph;
  if (kind !== expected.graph.kind || degree !== expected.graph.degree || seed !== expected.graph.seed)
    throw new SecAggError(
      'SECAGG_INPUT',
      `graph ${JSON.stringify(body.graph)} is not the one the settings and the round-open record give (${JSON.stringify(expected.graph)})`,
    );
  if (body.threshold !== expected.threshold)
    throw new SecAggError(
      'SECAGG_INPUT',
      `threshold ${body.threshold} is not the settings' ${expected.threshold}`,
    );
  return {
    participants,
    idOf: new Map(participants.map((p, q) => [p, q + 1])),
    graph: expected.mask,
    threshold: expected.threshold,
    encryptionKeys: new Map(body.advertised.map((a, q) => [q + 1, unhex(a.encryptionKey)])),
    maskKeys: new Map(body.advertised.map((a, q) => [q + 1, unhex(a.maskKey)])),
  };
}

/** H_i of the plan: `id` and its neighbours, ascending. */
export function holdersOf(plan: SecureRoundPlan, id: number): number[] {
  const neighbours = plan.graph.get(id);
  if (!neighbours) throw new SecAggError('SECAGG_STRANGER', `secure id ${id} is not in the round`);
  return [id, ...neighbours].sort((a, b) => a - b);
}
