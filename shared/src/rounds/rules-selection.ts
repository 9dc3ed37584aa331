// The selection rules of a round-open record, judged from the log alone. Pure.
//
//   seed        when the first config record commits to a seed chain (seed-chain.ts): the j-th
//               round-open record since reveals v_j with H^(j-i)(v_j) = v_i for the last value v_i
//               known to be on the chain (i = j - 1 in an honest log, v_0 the commitment), j <= N,
//               and its seed is seedFromReveal(v_j); without a commitment the seed is whatever
//               the coordinator wrote (the report says the seeds were unconstrained)
//   candidates  selection.ready, when the record names it: sorted (UTF-8 byte order), without
//               repeats, each an eligible participant (enrolled, not revoked) now; else, in logs
//               written before readiness, every eligible participant
//   selected    not empty, and exactly what the seed draws from the candidates (selection.ts, with
//               the recorded over-selection factor, 1 when absent)
//   quorum      when recorded: between 1 and the number selected, and, when the log holds a
//               readable config, the quorum that config gives (roundQuorum)
//   training    when recorded: trainingRound = 1 + the rounds aggregated before this one (aborted
//               rounds do not count), the number the learning-rate schedule and SCAFFOLD use

import { compareUtf8 } from '../aggregation/rule.ts';
import { FeditError } from '../errors.ts';
import { canonicalJson } from './canonical.ts';
import type { ReportProblem } from './problems.ts';
import type { RoundOpenBody } from './record.ts';
import { seedChainWalk, seedFromReveal } from './seed-chain.ts';
import { roundQuorum, selectionSize, selectParticipants } from './selection.ts';
import type { FederationState } from './state.ts';

export function checkSelection(body: RoundOpenBody, state: FederationState, problem: ReportProblem): void {
  const { seed, fraction, minimum, overSelection, ready, selected } = body.selection;
  if (selected.length === 0) problem('SELECTION_EMPTY', 'selects no participant');
  checkSeed(body.selection, state, problem);
  const eligible = state.eligibleParticipants();
  if (ready !== undefined && !checkCandidates(ready, eligible, problem)) return;
  const candidates = ready ?? eligible;
  let expected: string[];
  try {
    expected = selectParticipants(seed, candidates, fraction, minimum, overSelection ?? 1);
  } catch (err) {
    if (!(err instanceof FeditError)) throw err;
    problem('SELECTION_MISMATCH', `its selection cannot be re-derived: ${err.message}`);
    return;
  }
  if (canonicalJson(expected) !== canonicalJson(selected)) {
    const extra = selected.filter((id) => !expected.includes(id));
    const missing = expected.filter((id) => !selected.includes(id));
    const from = ready === undefined ? 'the eligible participants' : 'the recorded ready participants';
    problem(
      'SELECTION_MISMATCH',
      `selects [${selected.join(', ')}], but seed ${JSON.stringify(seed)} selects [${expected.join(', ')}] from ${from}` +
        (extra.length > 0 ? `; not selected by the seed: ${extra.join(', ')}` : '') +
        (missing.length > 0 ? `; left out: ${missing.join(', ')}` : ''),
    );
  }
  checkQuorum(body, candidates.length, state, problem);
  checkTrainingRound(body, state, problem);
}

/** The seed is the one the next value of the committed seed chain fixes; see the top. */
function checkSeed(
  selection: RoundOpenBody['selection'],
  state: FederationState,
  problem: ReportProblem,
): void {
  const chain = state.seedChain;
  const { reveal, seed } = selection;
  if (!chain) {
    if (reveal !== undefined)
      problem(
        'SEED_REVEAL',
        'reveals a seed chain value, but the first config record commits to no seed chain',
      );
    return;
  }
  const index = chain.revealed + 1;
  if (reveal === undefined) {
    problem(
      'SEED_REVEAL',
      `reveals no seed chain value, though the config record committed to a chain: its seed ${JSON.stringify(seed)} was not fixed in advance`,
    );
    return;
  }
  if (index > chain.length) {
    problem(
      'SEED_REVEAL',
      `is round-open record ${index} since the seed chain commitment, which covers ${chain.length}: the chain is spent`,
    );
    return;
  }
  if (seedChainWalk(reveal, index - chain.last.index) !== chain.last.value) {
    const what =
      reveal === chain.last.value
        ? 'repeats the value an earlier round-open record revealed'
        : `is not the next value of the committed seed chain (hashing it ${index - chain.last.index} time(s) must give ${chain.last.index === 0 ? 'the commitment' : `the value round-open record ${chain.last.index} revealed`}, ${chain.last.value})`;
    problem('SEED_REVEAL', `its reveal ${reveal} ${what}`);
    return;
  }
  const expected = seedFromReveal(reveal);
  if (seed !== expected)
    problem(
      'SEED_NOT_DERIVED',
      `its seed is ${JSON.stringify(seed)}, but its reveal fixes the seed ${expected} (SHA-256 of "fedit/round-seed/v1" and the reveal)`,
    );
}

/** The recorded ready set is sorted, without repeats, and only holds eligible participants. */
function checkCandidates(
  ready: readonly string[],
  eligible: readonly string[],
  problem: ReportProblem,
): boolean {
  for (let i = 1; i < ready.length; i++) {
    if (compareUtf8(ready[i - 1], ready[i]) >= 0) {
      problem(
        'SELECTION_MISMATCH',
        `selection.ready lists ${ready[i]} after ${ready[i - 1]}; it is sorted ascending (UTF-8 bytes), without repeats`,
      );
      return false;
    }
  }
  const allowed = new Set(eligible);
  const strangers = ready.filter((id) => !allowed.has(id));
  if (strangers.length > 0) {
    problem(
      'SELECTION_MISMATCH',
      `selection.ready names ${strangers.join(', ')}, who ${strangers.length === 1 ? 'is' : 'are'} not an eligible participant (enrolled, not revoked)`,
    );
    return false;
  }
  return true;
}

function checkQuorum(
  body: RoundOpenBody,
  candidates: number,
  state: FederationState,
  problem: ReportProblem,
): void {
  const { quorum, selection } = body;
  if (quorum === undefined) return;
  if (quorum > selection.selected.length) {
    problem('SELECTION_MISMATCH', `its quorum ${quorum} exceeds the ${selection.selected.length} selected`);
    return;
  }
  const settings = state.config?.participantsPerRound;
  if (!settings) return;
  const target = selectionSize(candidates, selection.fraction, selection.minimum);
  const expected = roundQuorum(target, selection.selected.length, settings.quorum);
  if (quorum !== expected)
    problem(
      'SELECTION_MISMATCH',
      `its quorum is ${quorum}, but the federation's config gives ${expected} for a target of ${target}`,
    );
}

function checkTrainingRound(body: RoundOpenBody, state: FederationState, problem: ReportProblem): void {
  const expected = state.aggregatedRounds + 1;
  if (body.trainingRound !== undefined && body.trainingRound !== expected)
    problem(
      'ROUND_ORDER',
      `says it is training round ${body.trainingRound}, but ${state.aggregatedRounds} round(s) were aggregated before it (training round ${expected})`,
    );
}
