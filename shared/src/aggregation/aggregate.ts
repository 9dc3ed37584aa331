// The round pipeline: from the round's counted updates to the next global adapter (and the server
// optimizer's next state), the computation the coordinator performs at the end of a round and an
// auditor repeats. In order:
//
//   1. each update (canonical order, loaded one at a time) is validated against the schema (at
//      its own lower LoRA rank r_k when the rule takes lower ranks, update-rank.ts); with frozenA
//      its lora_A tensors must equal the global adapter's bit for bit (FFA-LoRA)
//   2. its weight is its example count, at most weightCap
//   3. clipping (when set): the bound is fixed, or multiplier x the median of the round's update
//      norms ||update - global|| (norm.ts); each update is scaled toward the global adapter by
//      min(1, bound / norm) (clipping.ts). This needs a first pass over the updates for the norms.
//      For an update of rank r_k, "the global adapter" in 1 and 3 is its truncation to r_k
//      (globalAtRank), what the participant trained from.
//   4. the rule combines the updates into a binary64 target (rules.ts); with differentialPrivacy
//      in the rule config, DP-FedAvg's clipped, noised mean instead (dp-step.ts; fedavg-uniform only)
//   5. with a server optimizer, a FedOpt step from the global adapter toward the target
//      (server-optimizer.ts); without one, the target rounded to float32 is the new adapter.
//   6. with scaffold, SCAFFOLD's server control variate c steps from the same (clipped) updates
//      (scaffold.ts); c is kept in the server state as "c:<name>" beside the optimizer's tensors.
//
// With an empty rule config this is exactly the FedIT weighted mean of earlier versions.

import { AggregationError } from './aggregation-error.ts';
import { dpFedAvgTarget } from './dp-step.ts';
import { adaptiveClipBound, clipScale, clipToward } from './clipping.ts';
import { updateNorm } from './norm.ts';
import { aggregationRule } from './rules.ts';
import {
  compareParticipantIds,
  type AggregationConfig,
  type UpdateValues,
  type WeightedUpdate,
} from './rule.ts';
import type { RuleSettings } from './rule-settings.ts';
import { validateUpdate, type AdapterSchema, type TensorValues } from './schema.ts';
import { serverStep } from './server-optimizer.ts';
import { ControlStep, checkControlState, splitServerState, type ScaffoldRoundTerms } from './scaffold.ts';
import { globalAtRank, lowerRankOfValues, schemaForRank } from './update-rank.ts';
import { toFloat32 } from './weighted-mean.ts';

/** One participant's counted contribution to a round. */
export interface Contribution {
  participant: string;
  exampleCount: number;
  /** The update's values, or a function that loads them (so only one is in memory at a time). */
  update: TensorValues | (() => TensorValues);
}

export interface RoundInputs {
  rule: string;
  config: AggregationConfig;
  schema: AdapterSchema;
  contributions: readonly Contribution[];
  /** The global adapter the round trained from: clipping, frozenA and server steps need it. */
  global?: TensorValues;
  /** The server optimizer's state after the previous round that had one (undefined: zeros). */
  serverState?: TensorValues;
  /** SCAFFOLD's round terms (K, lr, N): needed when the rule config turns scaffold on. */
  scaffold?: ScaffoldRoundTerms;
  /** The round's 32-byte DP noise seed: needed when the rule config has central DP noise. */
  noiseSeed?: Uint8Array;
}

export interface RoundAggregate {
  adapter: Map<string, Float32Array>;
  /** The server optimizer's state for the next round, when the rule config has one that keeps state. */
  serverState?: Map<string, Float32Array>;
  /** The clipping bound the round applied, when it clipped. */
  clipBound?: number;
}

/** Aggregates a round: the steps in this file's header. Errors name the participant. */
export function aggregateRound(inputs: RoundInputs): RoundAggregate {
  const rule = aggregationRule(inputs.rule);
  const settings = rule.settings(inputs.config);
  const { schema, global } = inputs;
  const dp = settings.differentialPrivacy;
  if (dp && (rule.name !== 'fedavg-uniform' || settings.clipping || settings.scaffold)) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `rule ${rule.name}: differentialPrivacy runs with fedavg-uniform alone, without clipping or SCAFFOLD (DP-FedAvg's sensitivity is C only when each update weighs 1)`,
    );
  }
  const needsGlobal = settings.clipping || settings.serverOptimizer || settings.frozenA || settings.scaffold;
  if (!global && (needsGlobal || dp)) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `rule ${rule.name}: its settings need the round's global adapter`,
    );
  }
  const ordered = [...inputs.contributions].sort((a, b) =>
    compareParticipantIds(a.participant, b.participant),
  );
  if (ordered.length === 0) {
    throw new AggregationError('AGGREGATION_EMPTY', 'no update was counted; there is nothing to aggregate');
  }
  if (settings.scaffold && !inputs.scaffold) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `rule ${rule.name}: SCAFFOLD needs the round's local steps, learning rate and eligible participants`,
    );
  }
  const { optimizer: optimizerState, control } = settings.scaffold
    ? splitServerState(inputs.serverState)
    : { optimizer: inputs.serverState, control: undefined };
  if (control) checkControlState(schema, control);
  const controlStep = settings.scaffold ? new ControlStep(schema, global!) : undefined;
  const load = (c: Contribution) => loadUpdate(c, rule.name, schema, settings, global);
  let scales: number[] | undefined;
  let clipBound: number | undefined;
  if (settings.clipping) {
    const norms = ordered.map((c) => {
      const { values, reference } = load(c);
      return updateNorm(values, reference);
    });
    clipBound =
      settings.clipping.kind === 'fixed'
        ? settings.clipping.bound
        : adaptiveClipBound(norms, settings.clipping.multiplier);
    scales = norms.map((norm) => clipScale(norm, clipBound!));
  }
  function* updates(): Generator<WeightedUpdate> {
    for (let k = 0; k < ordered.length; k++) {
      const { participant, exampleCount } = ordered[k];
      const loaded = load(ordered[k]);
      const values: UpdateValues = scales
        ? clipToward(loaded.values, loaded.reference!, scales[k])
        : loaded.values;
      const weight = Math.min(exampleCount, settings.weightCap ?? exampleCount);
      controlStep?.add(values);
      yield { participant, weight, values };
    }
  }
  const target = settings.differentialPrivacy
    ? dpFedAvgTarget(
        (function* () {
          for (const u of updates()) yield u.values;
        })(),
        global!,
        schema,
        settings.differentialPrivacy,
        inputs.noiseSeed,
      )
    : rule.combine(updates(), schema, settings);
  const nextControl = controlStep?.result(control, inputs.scaffold!);
  if (!settings.serverOptimizer)
    return { adapter: toFloat32(target), clipBound, ...(nextControl && { serverState: nextControl }) };
  const step = serverStep(settings.serverOptimizer, schema, global!, target, optimizerState);
  const serverState = new Map([...(step.state ?? []), ...(nextControl ?? [])]);
  return { adapter: step.adapter, clipBound, ...(serverState.size > 0 && { serverState }) };
}

/**
 * The new global adapter alone: aggregateRound for callers without server state (tests, the
 * demo's offline comparison); `global` as for aggregateRound.
 */
export function aggregateContributions(
  ruleName: string,
  config: AggregationConfig,
  schema: AdapterSchema,
  contributions: readonly Contribution[],
  global?: TensorValues,
): Map<string, Float32Array> {
  return aggregateRound({ rule: ruleName, config, schema, contributions, global }).adapter;
}

/**
 * Loads and checks one update: the schema (at the update's rank), finite values, and FFA-LoRA's
 * frozen A. `reference`: what it trained from, the global adapter at its rank (when given).
 */
function loadUpdate(
  c: Contribution,
  ruleName: string,
  schema: AdapterSchema,
  settings: RuleSettings,
  global: TensorValues | undefined,
): { values: TensorValues; reference: TensorValues | undefined } {
  return withParticipant(c.participant, () => {
    const values = typeof c.update === 'function' ? c.update() : c.update;
    const rank = lowerRankOfValues(schema, values, ruleName);
    validateUpdate(schemaForRank(schema, rank), values);
    const reference = global && globalAtRank(global, schema, rank);
    if (settings.frozenA) checkFrozenA(values, reference!);
    if (!Number.isSafeInteger(c.exampleCount) || c.exampleCount <= 0) {
      throw new AggregationError(
        'AGGREGATION_WEIGHT',
        `weight ${c.exampleCount} is not a positive integer; weights are the participants' example counts`,
      );
    }
    return { values, reference };
  });
}

/** FFA-LoRA trains B only: an update whose lora_A moved was not trained by the federation's rule. */
export function checkFrozenA(update: TensorValues, global: TensorValues): void {
  for (const [name, values] of update) {
    if (!name.includes('.lora_A.')) continue;
    const frozen = global.get(name)!;
    for (let i = 0; i < values.length; i++) {
      if (!Object.is(values[i], frozen[i])) {
        throw new AggregationError(
          'AGGREGATION_FROZEN',
          `tensor ${name} differs from the global adapter at flat index ${i}; this federation freezes every lora_A (FFA-LoRA)`,
        );
      }
    }
  }
}

/** Runs `f`, prefixing an AggregationError's message with the participant it concerns. */
function withParticipant<T>(participant: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof AggregationError)) throw err;
    throw new AggregationError(err.code, `participant ${participant}: ${err.message}`, { cause: err });
  }
}
