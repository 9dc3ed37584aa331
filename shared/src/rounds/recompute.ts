// With the blob store at hand, the verifier recomputes a closed round: every blob the round names
// (adapters in and out, every counted update) is there and hashes to its name (a missing one is a
// problem, not a skipped check); each update passes the stored-update rules (update-rules.ts: the
// participant's signature over it, and the coordinator's admission rules for its tensors, the
// norm bound included when the log records the federation's config); and the announced rule,
// applied by aggregateContributions (the coordinator's own computation) to the stored updates,
// gives exactly the recorded new global adapter. With SCAFFOLD the server's control variate is
// recomputed too, from the terms the log fixes (scaffoldTermsOf: K and lr from the recorded
// config at the round's training round, N from the fold); a log without a readable config leaves that round unchecked.
// With central DP noise the round's noise seed (the coordinator's noise/round-<n>.seed) must match
// the round-open record's commitment, and the noise it regenerates is part of the recomputation;
// without the seed the round's noise, and so its aggregation, is unchecked (and the report says so).
// A secure round (round-closed with `secure`) is recomputed from its masked inputs instead, never
// from an individual update (recompute-secure.ts).

import { FeditError } from '../errors.ts';
import { AggregationError } from '../aggregation/aggregation-error.ts';
import { aggregateRound, type Contribution } from '../aggregation/aggregate.ts';
import { aggregationRule } from '../aggregation/rules.ts';
import { noiseSeedCommitment } from '../aggregation/dp-step.ts';
import { serverStateTensors } from '../aggregation/server-optimizer.ts';
import { scaffoldTermsOf, type ScaffoldRoundTerms } from '../aggregation/scaffold.ts';
import { compareUtf8 } from '../aggregation/rule.ts';
import { adapterSchema, tensorValues, tensorsFromValues, type AdapterSchema } from '../aggregation/schema.ts';
import { hashTensors } from '../tensors/hash.ts';
import type { Tensor } from '../tensors/tensor.ts';
import type { TensorCollection } from '../tensors/tensor-entries.ts';
import type { BlobLookup, ReportProblem, RoundReport } from './problems.ts';
import type { RoundClosedBody } from './record.ts';
import type { FederationState } from './state.ts';
import { checkStoredEnvelope, checkStoredUpdate } from './update-rules.ts';
import { recomputeSecureRound } from './recompute-secure.ts';

export interface Recomputation {
  aggregation: RoundReport['aggregation'];
  noise?: RoundReport['noise'];
  /** Blobs the round names that the store does not have (each also a BLOB_MISSING problem). */
  missingBlobs: string[];
}

/** Checks that the initial global adapter a config record names is in the store, intact. */
export function checkConfigBlob(hash: string, blobs: BlobLookup, problem: ReportProblem): void {
  new BlobLoader(blobs, problem).load(hash, 'the global adapter');
}

/** Recomputes round `round`, which `body` closes; `state` is the fold before the record (enrolled keys). */
export function recomputeRound(
  round: number,
  body: RoundClosedBody,
  state: FederationState,
  blobs: BlobLookup,
  report: ReportProblem,
  noiseSeeds?: (round: number) => Uint8Array | undefined,
): Recomputation {
  if (body.secure) return recomputeSecureRound(round, { ...body, secure: body.secure }, state, blobs, report);
  let failed = false;
  const problem: ReportProblem = (code, message) => {
    failed = true;
    report(code, message);
  };
  const loader = new BlobLoader(blobs, problem);
  const globalIn = loader.load(body.globalAdapterIn, 'the global adapter');
  loader.load(body.globalAdapterOut, 'the new global adapter');
  if (body.serverStateOut !== undefined) loader.load(body.serverStateOut, 'the new server state');
  let schema: AdapterSchema | undefined = globalIn && adapterSchema(globalIn);
  const global = globalIn && tensorValues(globalIn);
  const maxUpdateNorm = state.config?.limits.maxUpdateNorm;
  // Already reported by the round rules when unknown or misconfigured; the blobs, envelopes and
  // updates are still checked.
  const rule = usableRule(body);
  const contributions: Contribution[] = [];
  let unusable = false;
  for (const update of [...body.updates].sort((a, b) => compareUtf8(a.participant, b.participant))) {
    const tensors = loader.load(update.updateHash, `the update of ${update.participant}`);
    if (!tensors) {
      unusable = true;
      continue;
    }
    checkStoredEnvelope(update, tensors, state.participantKey(update.participant), problem);
    schema ??= adapterSchema(tensors);
    const terms = { schema, global, maxUpdateNorm, rule: body.rule.name };
    const values = checkStoredUpdate(update, tensors, terms, problem);
    if (values && rule)
      contributions.push({
        participant: update.participant,
        exampleCount: update.exampleCount,
        update: values,
      });
  }
  const missingBlobs = loader.missing;
  if (failed || unusable) return { aggregation: 'failed', missingBlobs };
  if (!rule || !schema || contributions.length === 0) return { aggregation: 'unchecked', missingBlobs };
  const scaffold = scaffoldTerms(body, round, state);
  if (scaffold === 'unknown') return { aggregation: 'unchecked', missingBlobs };

  const noise = noiseOf(body, round, state, noiseSeeds, problem);
  if (noise === 'failed') return { aggregation: 'failed', missingBlobs };
  if (noise?.seed === undefined && noise !== undefined)
    return { aggregation: 'unchecked', noise: 'unchecked', missingBlobs };

  const stateIn =
    body.serverStateIn === undefined ? undefined : loader.load(body.serverStateIn, 'the server state');
  if (body.serverStateIn !== undefined && !stateIn) return { aggregation: 'failed', missingBlobs };
  let recomputed: string;
  let recomputedState: string | undefined;
  try {
    const result = aggregateRound({
      rule,
      config: body.rule.config,
      schema,
      contributions,
      global,
      serverState: stateIn && tensorValues(stateIn),
      scaffold,
      ...(noise?.seed && { noiseSeed: noise.seed }),
    });
    recomputed = hashTensors(tensorsFromValues(schema, result.adapter));
    recomputedState = result.serverState && hashTensors(serverStateTensors(schema, result.serverState));
  } catch (err) {
    if (!(err instanceof AggregationError)) throw err;
    problem('UPDATE_INVALID', err.message);
    return { aggregation: 'failed', missingBlobs };
  }
  if (recomputed !== body.globalAdapterOut) {
    problem(
      'AGGREGATION_MISMATCH',
      `rule ${body.rule.name} applied to the ${body.updates.length} stored updates gives ${recomputed}, not the recorded new global adapter ${body.globalAdapterOut}`,
    );
    return { aggregation: 'failed', missingBlobs };
  }
  if (recomputedState !== body.serverStateOut) {
    problem(
      'AGGREGATION_MISMATCH',
      `rule ${body.rule.name}'s server optimizer gives state ${recomputedState ?? '(none)'}, not the recorded ${body.serverStateOut ?? '(none)'}`,
    );
    return { aggregation: 'failed', missingBlobs };
  }
  return { aggregation: 'verified', ...(noise && { noise: 'verified' }), missingBlobs };
}

/**
 * The round's central DP noise seed, checked against the round-open commitment: undefined when
 * the round adds no central noise, { seed: undefined } when the auditor has no seed for it.
 */
function noiseOf(
  body: RoundClosedBody,
  round: number,
  state: FederationState,
  noiseSeeds: ((round: number) => Uint8Array | undefined) | undefined,
  problem: ReportProblem,
): { seed: Uint8Array | undefined } | 'failed' | undefined {
  const dp = aggregationRule(body.rule.name).settings(body.rule.config).differentialPrivacy;
  if (dp?.noise !== 'central') return undefined;
  let seed: Uint8Array | undefined;
  try {
    seed = noiseSeeds?.(round);
  } catch (err) {
    if (!(err instanceof FeditError)) throw err;
    problem('NOISE_COMMITMENT', `the round's noise seed cannot be read: ${err.message}`);
    return 'failed';
  }
  if (seed === undefined) return { seed };
  const committed = state.rounds().get(round)?.noiseCommitment;
  const actual = noiseSeedCommitment(seed);
  if (committed !== actual) {
    problem(
      'NOISE_COMMITMENT',
      `the noise seed kept for the round commits to ${actual}, not to the round-open record's ${committed ?? '(none)'}`,
    );
    return 'failed';
  }
  return { seed };
}

/**
 * SCAFFOLD's terms for the round when its rule config turns SCAFFOLD on (undefined when off);
 * 'unknown' when the log holds no readable config or never opened the round.
 */
function scaffoldTerms(
  body: RoundClosedBody,
  round: number,
  state: FederationState,
): ScaffoldRoundTerms | undefined | 'unknown' {
  if (aggregationRule(body.rule.name).settings(body.rule.config).scaffold !== true) return undefined;
  const opened = state.rounds().get(round);
  if (!state.config || opened?.eligible === undefined) return 'unknown';
  // The schedule runs over aggregated rounds: the round's training round, not its number.
  return scaffoldTermsOf(state.config, opened.trainingRound, opened.eligible);
}

/** The name of the round's rule when it exists and accepts the round's config. */
function usableRule(body: RoundClosedBody): string | undefined {
  try {
    aggregationRule(body.rule.name).settings(body.rule.config);
    return body.rule.name;
  } catch (err) {
    if (!(err instanceof AggregationError)) throw err;
    return undefined;
  }
}

/** Reads blobs for one record: a missing, unreadable or misnamed blob is a problem naming its hash. */
export class BlobLoader {
  readonly #seen = new Map<string, Map<string, Tensor> | undefined>();
  readonly missing: string[] = [];

  constructor(
    private readonly blobs: BlobLookup,
    private readonly problem: ReportProblem,
  ) {}

  load(hash: string, what: string): Map<string, Tensor> | undefined {
    if (this.#seen.has(hash)) return this.#seen.get(hash);
    const tensors = this.#read(hash, what);
    this.#seen.set(hash, tensors);
    return tensors;
  }

  #read(hash: string, what: string): Map<string, Tensor> | undefined {
    let tensors: TensorCollection | undefined;
    try {
      tensors = this.blobs(hash);
    } catch (err) {
      if (!(err instanceof FeditError)) throw err;
      this.problem('BLOB_CORRUPT', `${what} ${hash} cannot be read from the blob store: ${err.message}`);
      return undefined;
    }
    if (tensors === undefined) {
      this.missing.push(hash);
      this.problem(
        'BLOB_MISSING',
        `${what} ${hash} is not in the blob store; without it this record cannot be checked`,
      );
      return undefined;
    }
    const map = tensors instanceof Map ? new Map(tensors) : new Map(Object.entries(tensors));
    let actual: string;
    try {
      actual = hashTensors(map);
    } catch (err) {
      if (!(err instanceof FeditError)) throw err;
      this.problem('BLOB_CORRUPT', `${what} stored under ${hash} is not a valid tensor set: ${err.message}`);
      return undefined;
    }
    if (actual !== hash) {
      this.problem(
        'BLOB_CORRUPT',
        `${what} stored under ${hash} hashes to ${actual}; the blob was changed or damaged`,
      );
      return undefined;
    }
    return map;
  }
}
