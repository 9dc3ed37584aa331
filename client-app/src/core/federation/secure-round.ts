// One secure round this participant was selected for (the federation has `secureAggregation`):
//
//   advertise  a SecureRoundClient for the round (its ephemeral keys and self seed in memory only)
//              -> 'secagg:advertise'
//   keys       the secagg-keys record ('secagg:phase', checked as the coordinator's by the
//              connection, here as this round's) -> the client checks every advert and the graph
//              -> 'secagg:shares' (each holder's shares boxed to it)
//   shares     the secagg-shares record -> 'secagg:inbox' -> the client opens the boxes for it
//   train      as a plain round (round.ts trainOnGlobal), then the delta from the global adapter,
//              masked with the capped weight (fedit: min(examples, weightCap); fedavg-uniform: 1)
//   upload     the masked words through the ordinary upload (update:begin/chunk/commit) as one I32
//              tensor (secagg/masked-input.ts), exampleCount 1: the count travels masked
//   consistency  the secagg-unmask record -> the client checks it and signs it (the one it signs
//              this round) -> 'secagg:consistency'
//   reveal     the secagg-consistency record -> the client checks enough survivors signed the same
//              secagg-unmask record (consistency.ts), then its reveal (its ShareHolder refuses to
//              give both kinds of share of one participant) -> 'secagg:reveal'
//
// Nothing of it is kept on disk: not the secrets, and not the update (a masked input is worthless
// once the secrets are gone). A participant that restarts, or reconnects after a phase it missed,
// has dropped out of the round: the coordinator recovers the others' sum without it, and the log
// line says so. No plaintext tensor leaves this computer.

import { randomBytes } from 'node:crypto';
import {
  FeditError,
  SecAggError,
  distributedDpDelta,
  SecureRoundClient,
  ruleRefFor,
  secureDelta,
  secureWeight,
  type ClientPayload,
  type RoundRecordOf,
  type SigningKeys,
} from '@fedit/shared';
import type { AnnouncedRoundOpen, SecurePhaseRecord } from './announced.ts';
import { selfCertifiedKeys, type AdvertiserIdentity } from './secure-identities.ts';
import { claimSecureRound, markSecureRound, unmarkSecureRound } from './secure-marker.ts';
import { FederationError, isTransient } from './errors.ts';
import type { RoundHistoryEntry } from './events.ts';
import { roundRequest, uploadUpdate, type RoundContext, type RoundIOContext } from './round-io.ts';
import type { ParticipantOptions, ParticipantSession } from './session.ts';
import { runRound, trainOnGlobal, type TrainedRound } from './round.ts';
import { federationLora } from './settings.ts';
import { buildMaskedUpdate } from './update.ts';
import { roundDir } from './store.ts';

type PhaseKind = SecurePhaseRecord['kind'];

/**
 * The phase records of one round as they arrive (the participant routes each 'secagg:phase' of
 * this round here), each taken once. The same record again (re-announced after a reconnection) is
 * ignored; another record of a kind already seen is the coordinator showing two logs: refused.
 */
export class PhaseInbox {
  readonly #records = new Map<PhaseKind, SecurePhaseRecord>();
  /** The advertisers' keys that came with the secagg-keys record (secure-identities.ts). */
  #signingKeys: SigningKeys = () => undefined;
  readonly #waiters = new Map<PhaseKind, () => void>();

  constructor(
    readonly round: number,
    /** The round-open record's position: a phase record is newer. */
    readonly openedSeq: number,
  ) {}

  deliver(record: SecurePhaseRecord, identities: readonly AdvertiserIdentity[] = []): void {
    if (record.round !== this.round || record.seq <= this.openedSeq) return; // another round's
    const seen = this.#records.get(record.kind);
    if (seen && seen.hash !== record.hash)
      throw new FederationError(
        'FEDERATION_FORGED',
        `the coordinator sent two different ${record.kind} records for round ${this.round} (${seen.hash}, ${record.hash}): it shows different logs`,
      );
    if (!seen && record.kind === 'secagg-keys') this.#signingKeys = selfCertifiedKeys(identities);
    this.#records.set(record.kind, record);
    this.#waiters.get(record.kind)?.();
  }

  /** The enrolled signing keys of the advertisers, self-certified (empty before secagg-keys). */
  get signingKeys(): SigningKeys {
    return this.#signingKeys;
  }

  /** The round's `kind` record, once it arrives; rejects when `signal` aborts. */
  next<K extends PhaseKind>(kind: K, signal: AbortSignal): Promise<RoundRecordOf<K>> {
    return new Promise((resolve, reject) => {
      const done = () => {
        const record = this.#records.get(kind);
        if (!record) return;
        signal.removeEventListener('abort', onAbort);
        this.#waiters.delete(kind);
        resolve(record as RoundRecordOf<K>);
      };
      const onAbort = () => {
        this.#waiters.delete(kind);
        reject(new FederationError('PARTICIPANT_STOPPED', 'the round stopped', { transient: true }));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.set(kind, done);
      done();
    });
  }
}

/** What the secure phases need of a round's task: no model (see SecureContribution). */
export interface SecureRoundIO extends RoundIOContext {
  session: RoundIOContext['session'] &
    Pick<ParticipantSession, 'home' | 'settings'> & { options: Pick<ParticipantOptions, 'chunkBytes'> };
  phases: PhaseInbox;
  /** The round's round-open record, as the connection checked it: its hash seeds the graph. */
  openRecord: RoundRecordOf<'round-open'>;
}

export interface SecureRoundContext extends RoundContext, SecureRoundIO {
  session: ParticipantSession;
}

/** What this participant masks: its delta, its capped weight, and what the history shows. */
export interface SecureContribution {
  delta: Map<string, Float32Array>;
  weight: number;
  trainLoss: number;
  examples: number;
}

/**
 * Makes this participant's contribution once its shares are in (undefined: stopped meanwhile),
 * given the round's threshold t. The app trains (trainedContribution); the federation benchmark
 * passes adapter-sized random deltas, so it measures these same phases without a model.
 */
export type ContributionSource<C extends SecureRoundIO> = (
  ctx: C,
  threshold: number,
) => Promise<SecureContribution | undefined>;

/** Takes part in a secure round (see the header), filling in `entry`. */
export async function runSecureRound<C extends SecureRoundIO>(
  ctx: C,
  entry: RoundHistoryEntry,
  contribute: ContributionSource<C>,
): Promise<void> {
  const { session, open, signal } = ctx;
  const status = (message: string) => ctx.setStatus({ status: 'training', round: open.round, message });
  const { home, membership } = session;
  let revealing = false;
  if (!(await claimSecureRound(home, membership.federation, open.round))) {
    ctx.events.emit(
      'warning',
      `secure round ${open.round}: this participant already took part in this round once and will not again (a coordinator running one round twice could subtract the two sums and learn this participant's update)`,
    );
    return;
  }
  try {
    await markSecureRound(home, membership.federation, open.round);
    const client = new SecureRoundClient({
      federation: session.membership.federation,
      round: open.round,
      participant: session.membership.participantId,
      identitySecretKey: session.identity.sign.secretKey,
      config: session.settings,
      roundOpen: ctx.openRecord,
    });
    status(`secure round ${open.round}: sending this round's keys`);
    await phaseRequest(ctx, 'secagg:advertise', client.advertise());
    const keys = await ctx.phases.next('secagg-keys', signal);
    await phaseRequest(ctx, 'secagg:shares', client.onKeys(keys, ctx.phases.signingKeys));
    const shares = await ctx.phases.next('secagg-shares', signal);
    const inbox = await phaseRequest(ctx, 'secagg:inbox', { round: open.round });
    client.onInbox(inbox.ciphertexts, shares);

    const contribution = await contribute(ctx, keys.body.threshold);
    if (!contribution) return; // stopped during training
    entry.trainLoss = contribution.trainLoss;
    entry.examples = contribution.examples;
    const words = client.mask(contribution.delta, contribution.weight);
    if (signal.aborted) return;
    ctx.setStatus({
      status: 'uploading',
      round: open.round,
      message: `sending the masked update of round ${open.round}`,
    });
    const outcome = await uploadUpdate(
      ctx,
      buildMaskedUpdate({
        identity: session.identity,
        federation: session.membership.federation,
        round: open.round,
        globalAdapterHash: open.globalAdapterHash,
        words,
        trainLoss: contribution.trainLoss,
        chunkBytes: session.options.chunkBytes,
      }),
    );
    if (outcome === 'stopped') return;
    entry.uploaded = true;
    ctx.setStatus({
      status: 'done-round',
      round: open.round,
      message: `masked update of round ${open.round} sent; waiting to reveal this round's shares`,
    });
    const unmask = await ctx.phases.next('secagg-unmask', signal);
    await phaseRequest(ctx, 'secagg:consistency', client.onUnmask(unmask));
    const consistency = await ctx.phases.next('secagg-consistency', signal);
    revealing = true;
    await phaseRequest(ctx, 'secagg:reveal', client.onConsistency(consistency));
    ctx.setStatus({
      status: 'done-round',
      round: open.round,
      message: `round ${open.round}: shares revealed; waiting for the round to close`,
    });
  } catch (error) {
    if (signal.aborted && (isTransient(error) || !(error instanceof FeditError))) return;
    if (!(error instanceof FeditError)) throw error; // a bug: let it stop the participant
    if (revealing && error.code === 'SECAGG_PHASE') {
      // The coordinator closes the reveal phase as soon as it can unmask: a late reveal is not a
      // dropout, the masked update is in the round's sum.
      ctx.setStatus({
        status: 'done-round',
        round: open.round,
        message: `round ${open.round}: the sum was unmasked before this participant's shares were needed; its update is in the round`,
      });
      return;
    }
    entry.error = error.message;
    ctx.events.emit('warning', `secure round ${open.round}: ${droppedOut(error)}`);
    ctx.setStatus({ status: 'waiting', round: open.round, message: 'waiting for the next round' });
  } finally {
    await unmarkSecureRound(home, membership.federation, open.round);
  }
}

/** Why this participant is out of the round, in words (a refusal of a lying coordinator says so). */
function droppedOut(error: FeditError): string {
  if (error instanceof SecAggError && error.code === 'SECAGG_REFUSED')
    return `refused the coordinator: ${error.message}; this participant takes no further part in the round`;
  if (error.code === 'SECAGG_PHASE')
    return `${error.message}; this participant missed a phase of the secure round (it restarted or was away), and its keys for the round are gone, so it has dropped out of this round`;
  return `${error.message}; this participant has dropped out of this round`;
}

/** A phase request, retried across dropped connections like every round request (round-io.ts). */
function phaseRequest<
  E extends 'secagg:advertise' | 'secagg:shares' | 'secagg:inbox' | 'secagg:consistency' | 'secagg:reveal',
>(ctx: RoundIOContext, event: E, payload: ClientPayload<E>) {
  return roundRequest(ctx, event, payload);
}

/** The app's contribution: trains from the round's global adapter, then encodable's delta and weight. */
export async function trainedContribution(
  ctx: SecureRoundContext,
  threshold: number,
): Promise<SecureContribution | undefined> {
  const { session, open } = ctx;
  const trained = await trainOnGlobal(ctx, roundDir(session.home, session.membership.federation, open.round));
  if (!trained) return undefined;
  const { delta, weight } = encodable(ctx, trained, threshold);
  return { delta, weight, trainLoss: trained.trainLoss, examples: session.data.rows.length };
}

/**
 * The delta the participant masks (secureDelta: trained − global, fixed clipping applied) and its
 * capped weight (secureWeight). A participant of a lower LoRA rank is refused: the masked sum adds
 * vectors of the federation's adapter only.
 */
function encodable(
  ctx: RoundContext,
  trained: TrainedRound,
  threshold: number,
): { delta: Map<string, Float32Array>; weight: number } {
  const { settings, rank, data } = ctx.session;
  const lora = federationLora(settings);
  if (rank !== lora.rank)
    throw new FederationError(
      'FEDERATION_ADAPTER',
      `a secure round sums updates of the federation's LoRA rank ${lora.rank}; this participant trains rank ${rank} (drop --rank)`,
    );
  const { rule, weightCap } = settings.aggregation;
  const weight = secureWeight(rule, data.rows.length, weightCap!);
  const dp = settings.differentialPrivacy;
  if (dp) {
    // Distributed DP noise: the clipped delta plus this participant's share of the noise, drawn
    // from a fresh seed that never leaves this computer. Each share is sized for the fewest
    // updates the round can close with (max(minUpdates, t): below t it aborts), so the unmasked
    // sum carries at least N(0, sigma^2 C^2) however many survive: the accountant's sigma holds.
    const fewest = Math.max(settings.minUpdates, threshold);
    const schema = new Map([...trained.globalValues].map(([name, g]) => [name, [g.length]]));
    return {
      delta: distributedDpDelta(trained.tensors, trained.globalValues, schema, dp, fewest, randomBytes(32)),
      weight,
    };
  }
  const ruleConfig = ruleRefFor(settings).config;
  return { delta: secureDelta(trained.tensors, trained.globalValues, rule, ruleConfig), weight };
}

/**
 * A selected participant's work in round `open`: a secure round (with its phase inbox, to which
 * the participant routes the round's 'secagg:phase' records) when the federation has
 * secureAggregation, else a plain one (round.ts).
 */
export function startRoundWork(
  context: RoundContext & { open: AnnouncedRoundOpen },
  entry: RoundHistoryEntry,
): { phases?: PhaseInbox; done: Promise<void> } {
  if (!context.session.settings.secureAggregation) return { done: runRound(context, entry) };
  const phases = new PhaseInbox(context.open.round, context.open.record.seq);
  const secure = { ...context, phases, openRecord: context.open.record };
  return { phases, done: runSecureRound(secure, entry, trainedContribution) };
}
