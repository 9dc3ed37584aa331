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
import type { BlobLookup, ReportProblem } from './problems.ts';
import type { RoundClosedBody, SecureSection } from './record.ts';
import { BlobLoader, type Recomputation } from './recompute.ts';
import { roundPlan } from './rules-secagg.ts';
import type { FederationState } from './state.ts';
import { checkStoredEnvelope } from './update-rules.ts';

const SECAGG_PROBLEM = {
  SECAGG_ABORT: 'SECAGG_THRESHOLD',
  SECAGG_EXPOSED: 'SECAGG_EXPOSED',
} as const;

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
  const secure = body.secure;
  const length = globalIn && schemaLength(adapterSchema(globalIn)) + 1;
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
  const missingBlobs = loader.missing;
  if (failed) return { aggregation: 'failed', missingBlobs };
  const opened = state.rounds().get(round);
  const keys = opened?.secagg?.keys;
  const settings = state.config?.secureAggregation;
  const weightCap = state.config?.aggregation.weightCap;
  const plan = opened && keys && roundPlan(state, opened, keys).plan;
  if (
    !plan ||
    !settings ||
    weightCap === undefined ||
    !globalIn ||
    !opened.secagg?.shares ||
    !opened.secagg.unmask
  )
    return { aggregation: 'unchecked', missingBlobs }; // the log's rules name what is missing
  const unrecorded = opened.secagg.unmask.survivors.filter((p) => !masked.has(p));
  if (unrecorded.length > 0 || masked.size !== opened.secagg.unmask.survivors.length) {
    problem(
      'SECAGG_MEMBERSHIP',
      `cannot unmask: the recorded masked inputs are not exactly the survivors' (missing: ${unrecorded.join(', ') || 'none'})`,
    );
    return { aggregation: 'failed', missingBlobs };
  }
  const fixedPoint = secureFixedPoint(settings, weightCap);
  const idOf = (p: string) => plan.idOf.get(p) ?? 0;
  const sharesOf = (d: Record<string, string>) =>
    new Map(Object.entries(d).map(([owner, share]) => [idOf(owner), unhex(share)]));
  const reveals: ShareReveal[] = secure.reveals.map((r) => ({
    holder: idOf(r.participant),
    self: sharesOf(r.self),
    key: sharesOf(r.key),
  }));
  let recomputed: string;
  let recomputedState: string | undefined;
  try {
    const sum = unmaskSecureSum({
      plan,
      round,
      commitments: new Map(
        opened.secagg.shares.shared.map((s) => [idOf(s.participant), s.selfSeedCommitment]),
      ),
      survivors: opened.secagg.unmask.survivors.map(idOf),
      dropped: opened.secagg.unmask.dropped.map(idOf),
      reveals,
      masked: (id) => masked.get(plan.participants[id - 1])!,
      length: length!,
    });
    const { totalWeight } = decodeSum(sum, masked.size, fixedPoint);
    if (totalWeight !== secure.totalWeight) {
      problem(
        'SECAGG_SUM',
        `the unmasked sum's total weight is ${totalWeight}, not the recorded ${secure.totalWeight}`,
      );
      return { aggregation: 'failed', missingBlobs };
    }
    const schema = adapterSchema(globalIn);
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
    recomputed = hashTensors(tensorsFromValues(schema, result.adapter));
    recomputedState = result.serverState && hashTensors(serverStateTensors(schema, result.serverState));
  } catch (err) {
    if (err instanceof SecAggError) {
      const code =
        err.code === 'SECAGG_ABORT' || err.code === 'SECAGG_EXPOSED'
          ? SECAGG_PROBLEM[err.code]
          : err.code === 'SECAGG_SHARES'
            ? 'SECAGG_SHARES'
            : 'SECAGG_SUM';
      problem(code, err.message);
      return { aggregation: 'failed', missingBlobs };
    }
    if (!(err instanceof AggregationError)) throw err;
    problem('UPDATE_INVALID', err.message);
    return { aggregation: 'failed', missingBlobs };
  }
  if (recomputed !== body.globalAdapterOut || recomputedState !== body.serverStateOut) {
    problem(
      'AGGREGATION_MISMATCH',
      `rule ${body.rule.name}'s sum path over the ${masked.size} unmasked inputs gives adapter ${recomputed} and state ${recomputedState ?? '(none)'}, not the recorded ${body.globalAdapterOut} and ${body.serverStateOut ?? '(none)'}`,
    );
    return { aggregation: 'failed', missingBlobs };
  }
  return { aggregation: 'verified', missingBlobs };
}
