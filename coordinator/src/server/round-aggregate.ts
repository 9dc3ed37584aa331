// A closing round's two aggregation paths, each from the round's global adapter and the last
// server state, each storing the new adapter (and state) before the round-closed record names them:
//
//   plain    the round's rule over the counted updates, in canonical order (aggregateRound)
//   secure   the rule's sum path over the unmasked sum of the masked inputs (aggregateSecureRound):
//            the decoded mean delta added to the global adapter, then the rule's server step; no
//            individual update exists here, only the sum the secure round unmasked
//
// Both run the rule and config the records name, so the audit recomputes exactly these.

import {
  aggregateRound,
  aggregateSecureRound,
  scaffoldTermsOf,
  secureFixedPoint,
  serverStateTensors,
  tensorsFromValues,
  tensorValues,
  type BlobStore,
  type CountedUpdate,
  type FederationConfig,
  type RoundAggregate,
  type RuleRef,
  type RuleSettings,
} from '@fedit/shared';
import type { Ledger } from './ledger.ts';
import { startTimer, timed } from './profile.ts';
import type { OpenRound } from './round.ts';

export interface AggregationContext {
  blobs: BlobStore;
  ledger: Ledger;
  config: FederationConfig;
  round: OpenRound;
  rule: RuleRef;
  settings: RuleSettings;
  /** The round's DP noise seed, with differential privacy and central noise (round-privacy.ts). */
  noiseSeed?: Uint8Array;
}

/** What a round's aggregation leaves: the hashes the record names, and the clip bound used. */
export interface Aggregated {
  adapter: string;
  serverStateIn: string | undefined;
  serverStateOut: string | undefined;
  clipBound: number | undefined;
}

/** The rule over the counted (plaintext) updates. */
export async function aggregatePlain(
  c: AggregationContext,
  counted: readonly CountedUpdate[],
): Promise<Aggregated> {
  const { blobs, ledger, round } = c;
  const serverState = serverStateOf(c);
  const result = timed('aggregate', () =>
    aggregateRound({
      rule: c.rule.name,
      config: c.rule.config, // the rule and config the records name, so the audit recomputes these
      schema: round.schema,
      global: round.global,
      serverState: serverState?.values,
      ...(c.settings.scaffold && {
        scaffold: scaffoldTermsOf(
          c.config,
          ledger.state.rounds().get(round.round)!.trainingRound, // the schedule's count, as the audit's
          ledger.state.rounds().get(round.round)!.eligible!,
        ),
      }),
      ...(c.noiseSeed && { noiseSeed: c.noiseSeed }),
      contributions: counted.map((u) => ({
        participant: u.participant,
        exampleCount: u.exampleCount,
        update: () => timed('aggregate.load', () => blobs.getF32(u.updateHash)!),
      })),
    }),
  );
  return store(c, result, serverState?.hash);
}

/** The rule's sum path over the unmasked sum (L words: the weighted deltas, then the total weight). */
export async function aggregateSecure(
  c: AggregationContext,
  sum: Uint32Array,
  survivors: number,
): Promise<Aggregated> {
  const { round } = c;
  const serverState = serverStateOf(c);
  const result = timed('aggregate', () =>
    aggregateSecureRound({
      rule: c.rule.name,
      config: c.rule.config,
      schema: round.schema,
      global: round.global,
      serverState: serverState?.values,
      sum,
      survivors,
      fixedPoint: secureFixedPoint(c.config.secureAggregation!, c.config.aggregation.weightCap!),
    }),
  );
  return store(c, result, serverState?.hash);
}

/** The last server state the log names, as values; undefined before any. */
function serverStateOf(c: AggregationContext) {
  const hash = c.ledger.state.serverState;
  if (hash === undefined) return undefined;
  const tensors = c.blobs.get(hash);
  if (!tensors) throw new Error(`the server state ${hash} the log names is not in the blob store`);
  return { hash, values: tensorValues(tensors) };
}

async function store(
  c: AggregationContext,
  result: RoundAggregate,
  serverStateIn: string | undefined,
): Promise<Aggregated> {
  const { blobs, round } = c;
  const stopStore = startTimer('aggregate.store');
  const adapter = await blobs.put(tensorsFromValues(round.schema, result.adapter));
  const serverStateOut =
    result.serverState && (await blobs.put(serverStateTensors(round.schema, result.serverState)));
  stopStore();
  return {
    adapter,
    serverStateIn: result.serverState && serverStateIn,
    serverStateOut,
    clipBound: result.clipBound,
  };
}
