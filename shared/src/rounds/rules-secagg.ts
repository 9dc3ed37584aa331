// The rules of a secure round's records, judged from the log alone (secagg/round/ says what each
// field means; recompute-secure.ts unmasks the sum with the blob store):
//
//   secagg-keys    inside the open round, once; every advert from a selected, enrolled participant,
//                  signed by its enrolled key; sorted; the graph (kind, degree, seed from the
//                  round-open hash) and threshold are those the recorded config gives (plan.ts)
//   secagg-shares  after the keys, once; U2 ⊆ U1, sorted; each entry signed; |U2| >= t
//   secagg-unmask  after the shares, once; survivors and dropped split U2, each sorted;
//                  |U3| >= t; no survivor exposed (unmask.ts)
//   secagg-consistency  after the unmask, once; signs the secagg-unmask record's hash; signatures
//                  only of survivors, sorted, each by its enrolled key; at least t, and for every
//                  owner whose shares are revealed its quorum of signing holders (consistency.ts)
//   round-closed   a federation whose config turns secure aggregation on closes its rounds with a
//                  `secure` section and no plaintext update, one without it never does; the three
//                  phases (consistency included) are in the log; the masked inputs are exactly the survivors', each
//                  envelope held to the admission rules as an update's (exampleCount 1); reveals
//                  only from survivors, sorted, self shares only of survivors and key shares only
//                  of the dropped, each signed by its holder

import { compareUtf8 } from '../aggregation/rule.ts';
import { SecAggError } from '../secagg/secagg-error.ts';
import { unhex, verifySecagg } from '../secagg/round/commitments.ts';
import { planOf, type SecureRoundPlan } from '../secagg/round/plan.ts';
import { exposedSurvivors } from '../secagg/round/unmask.ts';
import { judgeConsistency } from '../secagg/round/consistency.ts';
import type { ReportProblem } from './problems.ts';
import type {
  RoundClosedBody,
  RoundRecord,
  SecaggKeysBody,
  SecaggUnmaskBody,
  SecureSection,
} from './record.ts';
import type { FederationState, RoundState } from './state.ts';
import { checkRecordedUpdate } from './update-rules.ts';

type SecaggRecord = Extract<
  RoundRecord,
  { kind: 'secagg-keys' | 'secagg-shares' | 'secagg-unmask' | 'secagg-consistency' }
>;

/** The plan of the round's keys body under the recorded config, or undefined (and why) when there is none. */
export function roundPlan(
  state: FederationState,
  round: Readonly<RoundState>,
  keys: SecaggKeysBody,
): { plan?: SecureRoundPlan; problem?: string } {
  const settings = state.config?.secureAggregation;
  if (!settings || round.openHash === undefined) return {};
  try {
    return { plan: planOf(keys, settings, round.openHash) };
  } catch (err) {
    if (!(err instanceof SecAggError)) throw err;
    return { problem: err.message };
  }
}

/** Whether the list is sorted ascending (UTF-8), each once; otherwise reports it. */
function sorted(list: readonly string[], field: string, problem: ReportProblem): void {
  const at = list.findIndex((p, k) => k > 0 && compareUtf8(list[k - 1], p) >= 0);
  if (at > 0)
    problem('SECAGG_MEMBERSHIP', `${field} lists ${list[at]} after ${list[at - 1]}: sorted, once each`);
}

function signedBy(
  state: FederationState,
  what: 'advert' | 'shares' | 'reveal',
  record: SecaggRecord | { federation: string; round: number },
  participant: string,
  fields: Parameters<typeof verifySecagg>[2],
  signature: string,
  problem: ReportProblem,
): void {
  const key = state.participantKey(participant);
  if (key === undefined) {
    problem('NOT_ENROLLED', `holds the ${what} of ${participant}, who is not enrolled`);
    return;
  }
  const context = { federation: record.federation, round: record.round, participant };
  if (
    !/^[0-9a-f]{64}$/i.test(key) ||
    !verifySecagg(what, context, fields, unhex(key.toLowerCase()), unhex(signature))
  )
    problem('SECAGG_SIGNATURE', `the ${what} of ${participant} is not signed by its enrolled key`);
}

type Phases = NonNullable<RoundState['secagg']>;
type Context = {
  state: FederationState;
  round: Readonly<RoundState>;
  phases: Phases;
  problem: ReportProblem;
};

function checkKeys(record: Extract<SecaggRecord, { kind: 'secagg-keys' }>, c: Context): void {
  const { state, round, phases, problem } = c;
  if (phases.keys) return problem('SECAGG_ORDER', "is the round's second secagg-keys record");
  const selected = new Set(round.selected);
  for (const a of record.body.advertised) {
    if (!selected.has(a.participant))
      problem('SECAGG_MEMBERSHIP', `lists ${a.participant}, whom the round did not select`);
    const fields = { encryptionKey: a.encryptionKey, maskKey: a.maskKey };
    signedBy(state, 'advert', record, a.participant, fields, a.signature, problem);
  }
  sorted(
    record.body.advertised.map((a) => a.participant),
    'advertised',
    problem,
  );
  const { problem: wrong } = roundPlan(state, round, record.body);
  if (wrong !== undefined) problem('SECAGG_GRAPH', wrong);
}

function checkShares(record: Extract<SecaggRecord, { kind: 'secagg-shares' }>, c: Context): void {
  const { state, phases, problem } = c;
  if (!phases.keys || phases.shares)
    return problem(
      'SECAGG_ORDER',
      phases.keys ? "is the round's second secagg-shares record" : 'comes before the secagg-keys record',
    );
  const u1 = new Set(phases.keys.advertised.map((a) => a.participant));
  for (const s of record.body.shared) {
    if (!u1.has(s.participant))
      problem('SECAGG_MEMBERSHIP', `lists ${s.participant}, who advertised no keys`);
    const fields = { selfSeedCommitment: s.selfSeedCommitment, sharesHash: s.sharesHash };
    signedBy(state, 'shares', record, s.participant, fields, s.signature, problem);
  }
  sorted(
    record.body.shared.map((s) => s.participant),
    'shared',
    problem,
  );
  if (record.body.shared.length < phases.keys.threshold)
    problem(
      'SECAGG_THRESHOLD',
      `${record.body.shared.length} shared, below the threshold ${phases.keys.threshold}: the round should have aborted`,
    );
}

function checkUnmask(record: Extract<SecaggRecord, { kind: 'secagg-unmask' }>, c: Context): void {
  const { state, round, phases, problem } = c;
  if (!phases.keys || !phases.shares || phases.unmask)
    return problem(
      'SECAGG_ORDER',
      phases.shares ? "is the round's second secagg-unmask record" : 'comes before the secagg-shares record',
    );
  const { survivors, dropped } = record.body;
  const u2 = phases.shares.shared.map((s) => s.participant);
  sorted(survivors, 'survivors', problem);
  sorted(dropped, 'dropped', problem);
  const split = [...survivors, ...dropped].sort(compareUtf8);
  if (split.length !== u2.length || split.some((p, k) => p !== u2[k]))
    problem(
      'SECAGG_MEMBERSHIP',
      'survivors and dropped do not split the participants that shared, each once',
    );
  if (survivors.length < phases.keys.threshold)
    problem(
      'SECAGG_THRESHOLD',
      `${survivors.length} survivors, below the threshold ${phases.keys.threshold}: the round should have aborted`,
    );
  const { plan } = roundPlan(state, round, phases.keys);
  if (!plan) return;
  const ids = (l: readonly string[]) => l.map((p) => plan.idOf.get(p)).filter((id) => id !== undefined);
  const exposed = exposedSurvivors(plan, new Set(ids(u2)), ids(survivors));
  if (exposed.length > 0)
    problem(
      'SECAGG_EXPOSED',
      `unmasking exposes the input of ${exposed.map((i) => plan.participants[i - 1]).join(', ')}: every neighbour it masked with dropped`,
    );
}

function checkConsistency(record: Extract<SecaggRecord, { kind: 'secagg-consistency' }>, c: Context): void {
  const { state, round, phases, problem } = c;
  if (!phases.keys || !phases.unmask || phases.consistency)
    return problem(
      'SECAGG_ORDER',
      phases.unmask
        ? "is the round's second secagg-consistency record"
        : 'comes before the secagg-unmask record',
    );
  if (record.body.unmaskHash !== phases.unmaskHash)
    problem(
      'SECAGG_MEMBERSHIP',
      `signs ${record.body.unmaskHash}, not the round's secagg-unmask record ${phases.unmaskHash}`,
    );
  const { plan } = roundPlan(state, round, phases.keys);
  if (!plan) return;
  const ids = (l: readonly string[]) => l.map((p) => plan.idOf.get(p)).filter((id) => id !== undefined);
  const { problems } = judgeConsistency({
    plan,
    federation: record.federation,
    round: record.round,
    unmaskHash: phases.unmaskHash!,
    survivors: ids(phases.unmask.survivors),
    dropped: ids(phases.unmask.dropped),
    signatures: record.body.signatures,
    signingKey: (p) => {
      const key = state.participantKey(p);
      return key !== undefined && /^[0-9a-f]{64}$/i.test(key) ? unhex(key.toLowerCase()) : undefined;
    },
  });
  for (const { code, message } of problems) problem(code, message);
}

/** Judges a secagg-keys, -shares, -unmask or -consistency record against the fold before it. */
export function checkSecaggRecord(
  record: SecaggRecord,
  state: FederationState,
  problem: ReportProblem,
): void {
  const open = state.openRound;
  const round = open && state.rounds().get(open.round);
  if (!open || !round || record.round !== open.round) {
    problem('SECAGG_ORDER', `comes while round ${record.round} is not open`);
    return;
  }
  if (state.config && !state.config.secureAggregation)
    problem('SECAGG_PLAINTEXT', 'comes in a federation whose config does not turn secure aggregation on');
  const context: Context = { state, round, phases: round.secagg ?? {}, problem };
  if (record.kind === 'secagg-keys') checkKeys(record, context);
  else if (record.kind === 'secagg-shares') checkShares(record, context);
  else if (record.kind === 'secagg-unmask') checkUnmask(record, context);
  else checkConsistency(record, context);
}

/** Reveals only from survivors, sorted; self shares only of survivors, key shares only of the dropped; signed. */
function checkReveals(
  secure: SecureSection,
  unmask: SecaggUnmaskBody,
  record: { federation: string; round: number },
  state: FederationState,
  problem: ReportProblem,
): void {
  const alive = new Set(unmask.survivors);
  const dropped = new Set(unmask.dropped);
  sorted(
    secure.reveals.map((r) => r.participant),
    'reveals',
    problem,
  );
  for (const r of secure.reveals) {
    if (!alive.has(r.participant))
      problem('SECAGG_MEMBERSHIP', `holds a reveal of ${r.participant}, who is not a survivor`);
    for (const owner of Object.keys(r.self))
      if (!alive.has(owner))
        problem(
          'SECAGG_MEMBERSHIP',
          `${r.participant} reveals a self share of ${owner}, who is not a survivor`,
        );
    for (const owner of Object.keys(r.key))
      if (!dropped.has(owner))
        problem('SECAGG_MEMBERSHIP', `${r.participant} reveals a key share of ${owner}, who did not drop`);
    signedBy(state, 'reveal', record, r.participant, { self: r.self, key: r.key }, r.signature, problem);
  }
}

/** The secure part of a round-closed record's rules (see the header); true when the round is secure. */
export function checkSecureClose(
  round: number,
  body: RoundClosedBody,
  state: FederationState,
  problem: ReportProblem,
): boolean {
  const required = state.config?.secureAggregation !== undefined;
  const secure = body.secure;
  if (!secure) {
    if (required)
      problem(
        'SECAGG_PLAINTEXT',
        'closes with plaintext updates, but the federation config turns secure aggregation on',
      );
    return false;
  }
  if (state.config && !required)
    problem(
      'SECAGG_PLAINTEXT',
      'closes as a secure round, but the federation config does not turn secure aggregation on',
    );
  if (body.updates.length > 0) problem('SECAGG_PLAINTEXT', 'a secure round lists plaintext updates');
  const phases = state.rounds().get(round)?.secagg;
  if (!phases?.keys || !phases.shares || !phases.unmask || !phases.consistency) {
    problem(
      'SECAGG_ORDER',
      'closes a secure round whose secagg-keys, -shares, -unmask and -consistency records are not all in the log',
    );
    return true;
  }
  const survivors = phases.unmask.survivors;
  const masked = secure.maskedInputs.map((m) => m.participant);
  if (masked.length !== survivors.length || masked.some((p, k) => p !== survivors[k]))
    problem(
      'SECAGG_MEMBERSHIP',
      `its masked inputs (${masked.join(', ')}) are not the survivors' (${survivors.join(', ')})`,
    );
  checkReveals(secure, phases.unmask, { federation: state.federation ?? '', round }, state, problem);
  const selected = new Set(body.selection.selected);
  const envelopes = new Set<string>();
  for (const m of secure.maskedInputs) {
    const signKey = state.participantKey(m.participant);
    if (signKey === undefined) continue; // reported with its advert
    checkRecordedUpdate(
      {
        participant: m.participant,
        envelopeDigest: m.envelopeDigest,
        exampleCount: 1,
        updateHash: m.hash,
        envelope: m.envelope,
      },
      {
        federation: state.federation,
        signKey,
        round: { round, globalAdapter: body.globalAdapterIn, selected: selected.has(m.participant) },
        limits: state.config?.limits,
        counted: (digest) => state.hasEnvelope(digest) || envelopes.has(digest),
      },
      problem,
    );
    envelopes.add(m.envelopeDigest);
  }
  return true;
}
