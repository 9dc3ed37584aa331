// A secure round, coordinator side: the phases of SecAgg / SecAgg+ between round-open and the
// round's end, over the socket.io edge, with the pure engine (shared/src/secagg/round/'s
// SecureRoundCollector) deciding what every payload may do:
//
//   advertise  'secagg:advertise' from the selected, until all did or phaseSeconds passed
//              -> secagg-keys appended (U1), told to participants as 'secagg:phase'
//   shares     'secagg:shares' from U1, until all did or phaseSeconds passed
//              -> secagg-shares appended (U2), told; 'secagg:inbox' answered from then on
//   masked     masked inputs through the ordinary upload (uploads.ts: update:begin/chunk/commit of
//              one I32 tensor of L words, secagg/masked-input.ts), until the quorum or the deadline
//   unmask     secagg-unmask appended (U3 = who uploaded, U2 \ U3 dropped), told
//   consistency  'secagg:consistency' from U3 (each survivor's signature of the secagg-unmask record
//              it was shown), until all signed or phaseSeconds passed -> secagg-consistency
//              appended with the signatures, told; short of the quorums (consistency.ts) the round
//              aborts before anyone reveals
//   reveal     'secagg:reveal' from U3, until the collector can unmask or phaseSeconds passed
//              -> the sum unmasked; the runner aggregates it and appends round-closed with `secure`
//
// Below the threshold at any phase the collector refuses (SECAGG_ABORT / SECAGG_EXPOSED) and the
// round is aborted with its words, nothing revealed. A participant that missed a phase (not in U1,
// not in U2) is dropped from the round with why. Every phase record is kept so that a participant
// who reconnects is told the phases it missed, in order. No plaintext update ever reaches this side:
// the blob store holds masked inputs only, and the collector sees their hashes until unmasking,
// when it reads the stored words back.

import {
  SecAggError,
  SecureRoundCollector,
  maskedWordsOf,
  schemaLength,
  unhex,
  type BlobStore,
  type FederationConfig,
  type ServerPayload,
  type RoundRecordOf,
  type SecaggKeysBody,
  type SecaggSharesBody,
  type SecaggUnmaskBody,
  type SecaggConsistencyBody,
  type SecureSection,
  type ClientPayload,
  type InboxPayload,
  type RecordedEnvelope,
} from '@fedit/shared';
import type { BroadcastOperator } from 'socket.io';
import type { ServerToClientEvents } from '@fedit/shared';
import type { Emit } from './events.ts';
import type { Ledger } from './ledger.ts';
import { RefusedError } from './refusal.ts';
import type { OpenRound } from './round.ts';
import type { FeditSocket, SocketState } from './transport.ts';

/** The phase a secure round is in; each accepts only its own message. */
export type SecurePhase = 'advertise' | 'shares' | 'masked' | 'consistency' | 'reveal' | 'over';

/** What the reveal phase ends with: the unmasked sum, or why the round aborts. */
export type SecureOutcome =
  { ok: true; sum: Uint32Array; totalWeight: number; section: SecureSection } | { ok: false; reason: string };

export interface SecureRoundOptions {
  config: FederationConfig;
  ledger: Ledger;
  blobs: BlobStore;
  /** Where phase records go: every participant online (they are public, as every record). */
  broadcast: () => BroadcastOperator<ServerToClientEvents, SocketState>;
  emit: Emit;
  round: OpenRound;
  opened: RoundRecordOf<'round-open'>;
}

export class SecureRound {
  readonly collector: SecureRoundCollector;
  readonly length: number;
  phase: SecurePhase = 'advertise';
  /** The phase messages sent so far, in order: re-told to a participant who reconnects. */
  readonly messages: ServerPayload<'secagg:phase'>[] = [];
  /** Why the round must abort, once a phase found fewer than the threshold. */
  abortReason: string | undefined;
  #wake: (() => void) | undefined;
  #stopped = false;
  // Who the collector accepted in each phase (it refuses repeats, so each is added once).
  readonly #advertised = new Set<string>();
  readonly #shared = new Set<string>();
  readonly #revealed = new Set<string>();
  #phaseStarted = performance.now();
  readonly #secure: NonNullable<FederationConfig['secureAggregation']>;

  constructor(private readonly o: SecureRoundOptions) {
    const { config, ledger, round, opened } = o;
    this.#secure = config.secureAggregation!;
    this.length = schemaLength(round.schema) + 1;
    const selected = [...round.selected].sort();
    const signingKeys = new Map(selected.map((p) => [p, unhex(ledger.participant(p)!.signKey)] as const));
    this.collector = new SecureRoundCollector({
      federation: config.id,
      round: round.round,
      config,
      selected,
      signingKeys,
      roundOpenHash: opened.hash,
      length: this.length,
    });
  }

  get round(): number {
    return this.o.round.round;
  }

  // ---- the phases, run by the round runner -----------------------------------------------------

  /**
   * The key and share phases. Resolves true once masked uploads may begin; false when the round
   * must abort (abortReason says why) or ended meanwhile (deadline, shutdown).
   */
  async setUp(): Promise<boolean> {
    const { round } = this.o;
    const selected = [...round.selected];
    await this.#until(() => selected.every((p) => this.#advertised.has(p)));
    if (this.#stopped) return false;
    const keys = this.#body(() => this.collector.keysBody());
    if (!keys) return false;
    this.#dropMissing(selected, (p) => this.#advertised.has(p), 'advertised no keys');
    await this.#publish('secagg-keys', keys, 'shares');
    const u1 = keys.advertised.map((a) => a.participant);
    await this.#until(() => u1.every((p) => this.#shared.has(p)));
    if (this.#stopped) return false;
    const shares = this.#body(() => this.collector.sharesBody());
    if (!shares) return false;
    this.#dropMissing(u1, (p) => this.#shared.has(p), 'sent no shares');
    await this.#publish('secagg-shares', shares, 'masked');
    return true;
  }

  /** After the masked uploads: the unmask record, the reveals, the unmasked sum (or why not). */
  async finish(): Promise<SecureOutcome> {
    const unmask = this.#body(() => this.collector.unmaskBody());
    if (!unmask) return { ok: false, reason: this.abortReason! };
    const unmaskRecord = await this.#publish('secagg-unmask', unmask, 'consistency');
    this.collector.unmaskRecorded(unmaskRecord.hash);
    await this.#until(() => this.collector.allConsistent());
    if (this.#stopped) return { ok: false, reason: 'the coordinator stopped during the consistency phase' };
    const consistency = this.#body(() => this.collector.consistencyBody());
    if (!consistency) return { ok: false, reason: this.abortReason! };
    await this.#publish('secagg-consistency', consistency, 'reveal');
    const survivors = unmask.survivors;
    await this.#until(() => survivors.every((p) => this.#revealed.has(p)) || this.collector.canUnmask());
    if (this.#stopped) return { ok: false, reason: 'the coordinator stopped during the reveal phase' };
    this.#phaseDone('reveal', survivors.filter((p) => this.#revealed.has(p)).length);
    this.phase = 'over';
    try {
      const { sum, totalWeight, secureSection } = this.collector.unmask((p) => this.#maskedWords(p));
      return { ok: true, sum, totalWeight, section: secureSection };
    } catch (error) {
      if (!(error instanceof SecAggError)) throw error;
      return { ok: false, reason: `secure aggregation: ${error.message}` };
    }
  }

  /** Stops waiting at once: the round ended before masked uploads began, or the coordinator stops. */
  stop(): void {
    this.phase = 'over';
    this.#stopped = true;
    this.#wake?.();
  }

  // ---- the messages, from transport.ts's handlers ----------------------------------------------

  advertise(participant: string, p: ClientPayload<'secagg:advertise'>): Record<string, never> {
    this.#expect(p.round, 'advertise', 'secagg:advertise');
    this.#accept(() => this.collector.addAdvertise(participant, p));
    this.#advertised.add(participant);
    this.#received(participant, 'advertise');
    return {};
  }

  shares(participant: string, p: ClientPayload<'secagg:shares'>): Record<string, never> {
    this.#expect(p.round, 'shares', 'secagg:shares');
    this.#accept(() => this.collector.addShares(participant, p));
    this.#shared.add(participant);
    this.#received(participant, 'shares');
    return {};
  }

  inbox(participant: string, p: ClientPayload<'secagg:inbox'>): InboxPayload {
    this.#expectRound(p.round);
    if (this.phase === 'advertise' || this.phase === 'shares')
      throw new RefusedError(
        'SECAGG_PHASE',
        `round ${p.round}'s inbox opens once its secagg-shares record is out`,
        'payload.round',
      );
    return { ciphertexts: this.#accept(() => this.collector.inbox(participant)) };
  }

  consistency(participant: string, p: ClientPayload<'secagg:consistency'>): Record<string, never> {
    this.#expect(p.round, 'consistency', 'secagg:consistency');
    this.#accept(() => this.collector.addConsistency(participant, p));
    this.#received(participant, 'consistency');
    return {};
  }

  reveal(participant: string, p: ClientPayload<'secagg:reveal'>): Record<string, never> {
    this.#expect(p.round, 'reveal', 'secagg:reveal');
    this.#accept(() => this.collector.addReveal(participant, p));
    this.#revealed.add(participant);
    this.#received(participant, 'reveal');
    return {};
  }

  /** update:begin of a masked input: only in the masked phase, only from a participant in U2. */
  expectMasked(participant: string): void {
    if (this.phase !== 'masked')
      throw new RefusedError(
        'SECAGG_PHASE',
        `round ${this.round} takes masked inputs once its secagg-shares record is out; it is in its ${this.phase} phase`,
        'envelope.round',
      );
    if (!this.#shared.has(participant))
      throw new RefusedError(
        'SECAGG_STRANGER',
        `this participant sent no shares in round ${this.round}'s shares phase, so its masked input cannot be unmasked`,
        'envelope.round',
      );
  }

  /** A masked input was stored (uploads.ts): the collector notes it, then the round counts it. */
  addMasked(
    participant: string,
    masked: { hash: string; envelopeDigest: string; envelope: RecordedEnvelope },
  ): void {
    this.#accept(() => this.collector.addMasked(participant, masked));
  }

  /** Tells `to` (a participant who just authenticated) the phase records it may have missed. */
  announce(to: FeditSocket | BroadcastOperator<ServerToClientEvents, SocketState>): void {
    if (this.phase === 'over') return; // a past round's phases are nothing to act on
    for (const message of this.messages) to.emit('secagg:phase', message);
  }

  // ---- internals -------------------------------------------------------------------------------

  #received(participant: string, phase: 'advertise' | 'shares' | 'consistency' | 'reveal'): void {
    this.o.emit({ type: 'secagg-received', round: this.round, participant, phase });
  }

  /** The record body `make` builds, or undefined with abortReason set when the collector aborts. */
  #body<T>(make: () => T): T | undefined {
    try {
      return make();
    } catch (error) {
      if (!(error instanceof SecAggError)) throw error;
      this.abortReason = `secure aggregation, ${this.phase} phase: ${error.message}`;
      this.o.emit({
        type: 'secagg-phase',
        round: this.round,
        phase: this.phase,
        outcome: 'abort',
        participants: 0,
      });
      return undefined;
    }
  }

  async #publish(
    kind: 'secagg-keys' | 'secagg-shares' | 'secagg-unmask' | 'secagg-consistency',
    body: SecaggKeysBody | SecaggSharesBody | SecaggUnmaskBody | SecaggConsistencyBody,
    next: SecurePhase,
  ): Promise<{ hash: string }> {
    const participants =
      kind === 'secagg-keys'
        ? (body as SecaggKeysBody).advertised.length
        : kind === 'secagg-shares'
          ? (body as SecaggSharesBody).shared.length
          : kind === 'secagg-unmask'
            ? (body as SecaggUnmaskBody).survivors.length
            : (body as SecaggConsistencyBody).signatures.length;
    this.#phaseDone(this.phase, participants);
    // The record first, then the phase: nothing of the next phase is accepted before it is logged.
    const record = await this.o.ledger.append({ kind, body } as Parameters<Ledger['append']>[0]);
    // With the keys, each advertiser's public identity from its enrol record: the participants
    // check each advert's signature with it, once its fingerprint proves it is that participant's.
    const identities =
      kind === 'secagg-keys'
        ? (body as SecaggKeysBody).advertised.map(({ participant }) => {
            const entry = this.o.ledger.participant(participant)!;
            return { participant, sign: unhex(entry.signKey), box: unhex(entry.boxKey) };
          })
        : undefined;
    const message = { record, ...(identities && { identities }) };
    this.messages.push(message);
    if (this.phase !== 'over') this.phase = next;
    this.#phaseStarted = performance.now();
    this.o.broadcast().emit('secagg:phase', message);
    return record;
  }

  #phaseDone(phase: SecurePhase, participants: number): void {
    this.o.emit({
      type: 'secagg-phase',
      round: this.round,
      phase,
      outcome: 'done',
      participants,
      seconds: (performance.now() - this.#phaseStarted) / 1000,
    });
  }

  /**
   * Waits until `done()` holds, phaseSeconds pass, or stop() is called; woken by every message.
   */
  async #until(done: () => boolean): Promise<void> {
    const limit = performance.now() + this.#secure.phaseSeconds * 1000;
    while (!done() && performance.now() < limit && !this.#stopped) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, Math.max(1, Math.min(1000, limit - performance.now()))).unref();
      });
    }
    this.#wake = undefined;
  }

  #dropMissing(from: readonly string[], did: (p: string) => boolean, what: string): void {
    for (const p of from)
      if (!did(p)) this.o.round.drop(p, `${what} within the ${this.phase} phase of the secure round`);
  }

  #expectRound(round: number): void {
    if (round !== this.round)
      throw new RefusedError('SECAGG_PHASE', `round ${round} is not the open secure round`, 'payload.round');
  }

  #expect(round: number, phase: SecurePhase, event: string): void {
    this.#expectRound(round);
    if (this.phase !== phase)
      throw new RefusedError(
        'SECAGG_PHASE',
        `${event} belongs to the ${phase} phase; round ${round} is in its ${this.phase} phase`,
        'payload.round',
      );
  }

  /** Runs a collector step; its SecAggError becomes the refusal the participant is told. */
  #accept<T>(step: () => T): T {
    try {
      const result = step();
      // After the caller noted who sent it (the wait checks that): woken on the next tick.
      setImmediate(() => this.#wake?.());
      return result;
    } catch (error) {
      if (error instanceof SecAggError) throw new RefusedError(error.code, error.message);
      throw error;
    }
  }

  #maskedWords(participant: string): Uint32Array {
    const counted = this.o.round.counted.get(participant);
    const tensors = counted && this.o.blobs.get(counted.updateHash);
    if (!tensors) throw new Error(`the masked input of ${participant} is not in the blob store`);
    return maskedWordsOf(tensors, this.length);
  }
}
