// The audit of a secure round with the blob store (recompute.ts hands a round-closed record with a
// `secure` section here): from the log's records and the stored masked inputs only, never an
// individual update, it
//
//   1. loads each survivor's masked input (a missing blob is BLOB_MISSING; one that does not hash
//      to its name BLOB_CORRUPT), checks the survivor's signed envelope over exactly those tensors
//      (ENVELOPE) and reads its L + 1 words (masked-input.ts; L from the global adapter: SECAGG_SUM)
//   2. rebuilds the round's plan from the secagg-keys record and the recorded config (plan.ts)
//   3. unmasks the sum (unmask.ts, the coordinator's own computation): each survivor's self seed
//      reconstructed from the revealed shares must match its commitment in the secagg-shares
//      record, each needed dropped mask key its advert (SECAGG_SHARES)
//   4. decodes the sum: its total weight must be the recorded totalWeight (SECAGG_SUM)
//   5. applies the rule's sum path (aggregation/secure.ts) from the round's global adapter and
//      server state: the result must be globalAdapterOut and serverStateOut (AGGREGATION_MISMATCH)
//
// The reveals' signatures and the sets' nesting are the log's rules (rules-secagg.ts).

import { AggregationError } from '../aggregation/aggregation-error.ts';
import { adapterSchema, tensorValues, tensorsFromValues } from '../aggregation/schema.ts';
import { aggregateSecureRound } from '../aggregation/secure.ts';
import { serverStateTensors } from '../aggregation/server-optimizer.ts';
import { secureFixedPoint } from '../federation/secure-aggregation.ts';
import { decodeSum } from '../secagg/fixed-point.ts';
import { maskedWordsOf } from '../secagg/masked-input.ts';
import type { ShareReveal } from '../secagg/masking.ts';
import { SecAggError } from '../secagg/secagg-error.ts';
import { unhex } from '../secagg/round/commitments.ts';
import { schemaLength } from '../secagg/round/flatten.ts';
import { unmaskSecureSum } from '../secagg/round/unmask.ts';
import { hashTensors } from '../tensors/hash.ts';
import type { BlobLookup, ReportProblem, VerificationProblemCode } from './problems.ts';
import type { RoundClosedBody, SecureSection } from './record.ts';
import { BlobLoader, type Recomputation } from './recompute.ts';
import { roundPlan } from './rules-secagg.ts';
import type { FederationState } from './state.ts';
import { checkStoredEnvelope } from './update-rules.ts';

/** Step 1: each survivor's masked words, after its blob and envelope checks (problems name what fails). */
function loadMaskedInputs(
  secure: SecureSection,
  loader: BlobLoader,
  state: FederationState,
  length: number | undefined,
  problem: ReportProblem,
): Map<string, Uint32Array> {
  const masked = new Map<string, Uint32Array>();
  for (const m of secure.maskedInputs) {
    const tensors = loader.load(m.hash, `the masked input of ${m.participant}`);
    if (!tensors) continue;
    const update = {
      participant: m.participant,
      envelopeDigest: m.envelopeDigest,
      exampleCount: 1,
      updateHash: m.hash,
      envelope: m.envelope,
    };
    checkStoredEnvelope(update, tensors, state.participantKey(m.participant), problem);
    if (length === undefined) continue;
    try {
      masked.set(m.participant, maskedWordsOf(tensors, length));
    } catch (err) {
      if (!(err instanceof SecAggError)) throw err;
      problem('SECAGG_SUM', `the masked input of ${m.participant}: ${err.message}`);
    }
  }
  return masked;
}

/** What steps 2 to 5 need from the log, or undefined when it lacks a part (the rules name which). */
function secureTerms(round: number, state: FederationState) {
  const opened = state.rounds().get(round);
  const phases = opened?.secagg;
  const settings = state.config?.secureAggregation;
  const weightCap = state.config?.aggregation.weightCap;
  if (!opened || !phases?.keys || !phases.shares || !phases.unmask || !settings || weightCap === undefined)
    return undefined;
  const plan = roundPlan(state, opened, phases.keys).plan;
  if (!plan) return undefined;
  return {
    plan,
    shares: phases.shares,
    unmask: phases.unmask,
    fixedPoint: secureFixedPoint(settings, weightCap),
  };
}

/** Steps 2 and 3: the sum, unmasked from the recorded reveals with the coordinator's own code. */
function unmaskFromRecords(
  round: number,
  secure: SecureSection,
  terms: NonNullable<ReturnType<typeof secureTerms>>,
  masked: ReadonlyMap<string, Uint32Array>,
  length: number,
): Uint32Array {
  const { plan, shares, unmask } = terms;
  const idOf = (p: string) => plan.idOf.get(p) ?? 0;
  const sharesOf = (d: Record<string, string>) =>
    new Map(Object.entries(d).map(([owner, share]) => [idOf(owner), unhex(share)]));
  const reveals: ShareReveal[] = secure.reveals.map((r) => ({
    holder: idOf(r.participant),
    self: sharesOf(r.self),
    key: sharesOf(r.key),
  }));
  return unmaskSecureSum({
    plan,
    round,
    commitments: new Map(shares.shared.map((s) => [idOf(s.participant), s.selfSeedCommitment])),
    survivors: unmask.survivors.map(idOf),
    dropped: unmask.dropped.map(idOf),
    reveals,
    masked: (id) => masked.get(plan.participants[id - 1])!,
    length,
  });
}

/** The problem code of a SecAggError met while unmasking. */
function problemOf(err: SecAggError): VerificationProblemCode {
  if (err.code === 'SECAGG_ABORT') return 'SECAGG_THRESHOLD';
  if (err.code === 'SECAGG_EXPOSED' || err.code === 'SECAGG_SHARES') return err.code;
  return 'SECAGG_SUM';
}

/** Recomputes the secure round `round` that `body` closes (see the header). */
export function recomputeSecureRound(
  round: number,
  body: RoundClosedBody & { secure: SecureSection },
  state: FederationState,
  blobs: BlobLookup,
  report: ReportProblem,
): Recomputation {
  let failed = false;
  const problem: ReportProblem = (code, message) => {
    failed = true;
    report(code, message);
  };
  const loader = new BlobLoader(blobs, problem);
  const globalIn = loader.load(body.globalAdapterIn, 'the global adapter');
  loader.load(body.globalAdapterOut, 'the new global adapter');
  if (body.serverStateOut !== undefined) loader.load(body.serverStateOut, 'the new server state');
  const stateIn =
    body.serverStateIn === undefined ? undefined : loader.load(body.serverStateIn, 'the server state');
  const schema = globalIn && adapterSchema(globalIn);
  const masked = loadMaskedInputs(body.secure, loader, state, schema && schemaLength(schema) + 1, problem);
  const missingBlobs = loader.missing;
  const failure = { aggregation: 'failed', missingBlobs } as const;
  if (failed) return failure;
  const terms = secureTerms(round, state);
  if (!terms || !globalIn || !schema) return { aggregation: 'unchecked', missingBlobs };
  const { unmask, fixedPoint } = terms;
  const unrecorded = unmask.survivors.filter((p) => !masked.has(p));
  if (unrecorded.length > 0 || masked.size !== unmask.survivors.length) {
    problem(
      'SECAGG_MEMBERSHIP',
      `cannot unmask: the recorded masked inputs are not exactly the survivors' (missing: ${unrecorded.join(', ') || 'none'})`,
    );
    return failure;
  }
  let recomputed: { adapter: string; state?: string };
  try {
    const sum = unmaskFromRecords(round, body.secure, terms, masked, schemaLength(schema) + 1);
    const { totalWeight } = decodeSum(sum, masked.size, fixedPoint);
    if (totalWeight !== body.secure.totalWeight) {
      problem(
        'SECAGG_SUM',
        `the unmasked sum's total weight is ${totalWeight}, not the recorded ${body.secure.totalWeight}`,
      );
      return failure;
    }
    const result = aggregateSecureRound({
      rule: body.rule.name,
      config: body.rule.config,
      schema,
      global: tensorValues(globalIn),
      serverState: stateIn && tensorValues(stateIn),
      sum,
      survivors: masked.size,
      fixedPoint,
    });
    recomputed = {
      adapter: hashTensors(tensorsFromValues(schema, result.adapter)),
      state: result.serverState && hashTensors(serverStateTensors(schema, result.serverState)),
    };
  } catch (err) {
    if (err instanceof SecAggError) problem(problemOf(err), err.message);
    else if (err instanceof AggregationError) problem('UPDATE_INVALID', err.message);
    else throw err;
    return failure;
  }
  if (recomputed.adapter !== body.globalAdapterOut || recomputed.state !== body.serverStateOut) {
    problem(
      'AGGREGATION_MISMATCH',
      `rule ${body.rule.name}'s sum path over the ${masked.size} unmasked inputs gives adapter ${recomputed.adapter} and state ${recomputed.state ?? '(none)'}, not the recorded ${body.globalAdapterOut} and ${body.serverStateOut ?? '(none)'}`,
    );
    return failure;
  }
  return { aggregation: 'verified', missingBlobs };
}
