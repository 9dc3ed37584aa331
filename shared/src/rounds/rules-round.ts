// The rules of a round, judged from the log alone. Pure: they judge a round-open or round-closed
// record against the fold of the records before it.
//
//   open    no other round is open and this is the next number; the rule exists and accepts its
//           config, which is the one the federation's config derives (ruleRefFor) when the log
//           holds a readable config; the round trains from the current global adapter, and from the
//           server state the last closed round left when it names one (serverStateIn, what
//           SCAFFOLD's participants fetch c from); the selection is not empty
//           and is the one its seed draws from its candidates, its quorum and training round are
//           the ones the log gives (rules-selection.ts)
//   close   the round is open; the close repeats the open's rule, selection and adapter; at least
//           one update counts; every counted update comes from an enrolled, unrevoked participant,
//           listed in canonical order; and each meets the coordinator's admission rules for this
//           round (update-rules.ts): the participant's standing (not dropped, not counted twice)
//           and, for an enrolled participant, its recorded envelope (selected, never counted
//           before, the round's adapter, the federation's limits, ...), which says what the
//           record says; a rule with a stateful server optimizer steps from the state the last
//           closed round left (serverStateIn) and records the next (serverStateOut); so does
//           one with SCAFFOLD, whose control variate is part of that state; its held-out means
//           are those of the figures its counted updates signed (held-out.ts); a secure round
//           closes by the rules of rules-secagg.ts instead of counting plaintext updates

import { AggregationError } from '../aggregation/aggregation-error.ts';
import { aggregationRule, ruleRefFor } from '../aggregation/rules.ts';
import type { RuleSettings } from '../aggregation/rule-settings.ts';
import { compareUtf8, type AggregationConfig, type AggregationRule } from '../aggregation/rule.ts';
import { canonicalJson } from './canonical.ts';
import type { ReportProblem } from './problems.ts';
import type { RoundClosedBody, RoundOpenBody, RuleRef } from './record.ts';
import { checkSelection } from './rules-selection.ts';
import type { FederationState } from './state.ts';
import { checkRecordedUpdate, checkStanding } from './update-rules.ts';
import { checkHeldOutMeans } from './held-out.ts';
import { checkSecureClose } from './rules-secagg.ts';

/** The rule named `name`, when it exists and accepts `config`; otherwise a problem says why not. */
export function checkRule(
  name: string,
  config: AggregationConfig,
  problem: ReportProblem,
): AggregationRule | undefined {
  try {
    const rule = aggregationRule(name);
    rule.settings(config);
    return rule;
  } catch (err) {
    if (!(err instanceof AggregationError)) throw err;
    problem(err.code === 'AGGREGATION_UNKNOWN_RULE' ? 'UNKNOWN_RULE' : 'RULE_CONFIG', err.message);
    return undefined;
  }
}

/** With the federation's config in the log, the round's rule and settings are the ones it derives. */
function checkRuleOfConfig(ref: RuleRef, state: FederationState, problem: ReportProblem): void {
  if (!state.config) return;
  let expected: RuleRef;
  try {
    expected = ruleRefFor(state.config);
  } catch (err) {
    if (!(err instanceof AggregationError)) throw err;
    return; // the rule itself is reported by checkRule
  }
  if (canonicalJson(expected) !== canonicalJson(ref)) {
    problem(
      'RULE_CONFIG',
      `announces rule ${canonicalJson(ref)}, but the federation's config gives ${canonicalJson(expected)}`,
    );
  }
}

/** A round with a stateful server optimizer steps from the last state and records the next one. */
function checkServerState(
  body: RoundClosedBody,
  settings: RuleSettings,
  state: FederationState,
  problem: ReportProblem,
): void {
  const keepsState =
    (settings.serverOptimizer !== undefined && settings.serverOptimizer.kind !== 'sgd') ||
    settings.scaffold === true;
  if (body.serverStateIn !== state.serverState) {
    problem(
      'GLOBAL_MISMATCH',
      `steps from server state ${body.serverStateIn ?? '(none)'}, but the last round left ${state.serverState ?? '(none)'}`,
    );
  }
  if (keepsState !== (body.serverStateOut !== undefined)) {
    problem(
      'RULE_CONFIG',
      keepsState
        ? `its server optimizer keeps state, but the record names none`
        : `records a server state, but its rule config keeps none`,
    );
  }
}

export function checkOpen(
  round: number,
  body: RoundOpenBody,
  state: FederationState,
  problem: ReportProblem,
): void {
  const open = state.openRound;
  if (open) problem('ROUND_ORDER', `opens while round ${open.round} is still open`);
  if (round !== state.lastRound + 1) {
    problem('ROUND_ORDER', `opens round ${round}, but the next round is ${state.lastRound + 1}`);
  }
  checkRule(body.rule.name, body.rule.config, problem);
  checkRuleOfConfig(body.rule, state, problem);
  if (body.globalAdapter !== state.globalAdapter) {
    problem(
      'GLOBAL_MISMATCH',
      `trains from ${body.globalAdapter}, but the global adapter is ${state.globalAdapter ?? 'not set'}`,
    );
  }
  if (body.serverStateIn !== undefined && body.serverStateIn !== state.serverState) {
    problem(
      'GLOBAL_MISMATCH',
      `announces server state ${body.serverStateIn}, but the last round left ${state.serverState ?? '(none)'}`,
    );
  }
  checkSelection(body, state, problem);
}

export function checkClose(
  round: number,
  body: RoundClosedBody,
  state: FederationState,
  problem: ReportProblem,
): void {
  const open = state.openRound;
  if (open?.round !== round) {
    problem('ROUND_ORDER', `closes round ${round}, which is not open`);
  } else {
    if (canonicalJson(body.rule) !== canonicalJson(open.body.rule)) {
      problem(
        'OPEN_CLOSE_MISMATCH',
        `announces rule ${canonicalJson(body.rule)}, but the round opened with ${canonicalJson(open.body.rule)}`,
      );
    }
    if (canonicalJson(body.selection) !== canonicalJson(open.body.selection)) {
      problem('OPEN_CLOSE_MISMATCH', 'its selection differs from the one the round opened with');
    }
    if (body.globalAdapterIn !== open.body.globalAdapter) {
      problem(
        'GLOBAL_MISMATCH',
        `says the round trained from ${body.globalAdapterIn}, but it opened with ${open.body.globalAdapter}`,
      );
    }
  }
  const rule = checkRule(body.rule.name, body.rule.config, problem);
  if (rule) checkServerState(body, rule.settings(body.rule.config), state, problem);
  const secure = checkSecureClose(round, body, state, problem);
  if (!secure && body.updates.length === 0)
    problem('NO_UPDATES', 'closes with no counted update; such a round is aborted');
  checkCountedUpdates(round, body, state, problem);
  checkHeldOutMeans(body, problem);
}

function checkCountedUpdates(
  round: number,
  body: RoundClosedBody,
  state: FederationState,
  problem: ReportProblem,
): void {
  const selected = new Set(body.selection.selected);
  // What the coordinator's open round holds while it counts: the updates counted so far.
  const counted = new Map<string, { envelopeDigest: string }>();
  const envelopes = new Set<string>();
  body.updates.forEach((update, i) => {
    const who = update.participant;
    const previous = body.updates[i - 1];
    const again = counted.has(who);
    checkStanding(update, { round, counted, dropped: body.dropped }, problem);
    if (!again && previous && compareUtf8(previous.participant, who) > 0) {
      problem(
        'UPDATES_ORDER',
        `lists ${who} after ${previous.participant}; updates are listed in ascending participant order`,
      );
    }
    counted.set(who, update);
    const publicKey = state.participantKey(who);
    if (publicKey === undefined) problem('NOT_ENROLLED', `counts an update of ${who}, who is not enrolled`);
    else if (state.isRevoked(who))
      problem('REVOKED_PARTICIPANT', `counts an update of ${who}, whose enrolment was revoked`);
    // Only an enrolled participant has a key to hold its envelope to; one who is not cannot have
    // been selected either (the open's selection is re-derived from the enrolled participants).
    if (publicKey !== undefined)
      checkRecordedUpdate(
        update,
        {
          federation: state.federation,
          signKey: publicKey,
          round: { round, globalAdapter: body.globalAdapterIn, selected: selected.has(who) },
          limits: state.config?.limits,
          counted: (digest) => state.hasEnvelope(digest) || envelopes.has(digest),
        },
        problem,
      );
    envelopes.add(update.envelopeDigest);
  });
}
