// The round state machine. One round at a time, until the config's number of rounds aggregated:
//
//   waiting  --enough eligible participants ready-->             open (round-open appended, announced)
//   open     --quorum counted, all selected counted or dropped,
//             or deadline-->                                      closing
//   closing  --fewer than minUpdates counted-->                  waiting (round-aborted appended)
//   closing  --aggregated, new global adapter stored-->          waiting (round-closed appended)
//   waiting  --config.rounds aggregated-->                       finished
//   any      --close()-->                                        stopped (an open round stays open
//                                                                in the log; the next start aborts it)
//
// Selection draws from the participants who said they are ready (sessions.ts), over-selects and
// closes at the quorum (shared/src/rounds/selection.ts); the round-open record names the ready set,
// so the audit re-derives the draw. `rounds` counts aggregated rounds: an aborted round is retried
// under the next number and does not advance the training schedule (trainingRound = 1 + rounds
// aggregated before; the learning-rate schedule and SCAFFOLD's terms use it, the participants'
// training seed stays the round number, unique per opened round). After MAX_CONSECUTIVE_ABORTS
// aborts in a row, no round opens until a participant newly says it is ready, so that a federation
// of unresponsive participants waits instead of opening and aborting rounds forever.
//
// Every transition is a record appended to the round log first, then told to participants.
// Finished is not the end of serving: the coordinator goes on answering 'adapter:get' for the final
// global adapter and tells everyone online, and each participant who connects later, that the
// federation is over ('federation:finished'), so that every participant ends holding its result.
// A coordinator started on a federation whose rounds were all aggregated is finished from the start.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  aggregationRule,
  heldOutMeans,
  ruleRefFor,
  drawSelection,
  noiseSeedCommitment,
  type SeedChain,
  type RuleSettings,
  type RoundOpenBody,
  type RoundRecordOf,
  type ServerToClientEvents,
} from '@fedit/shared';
import type { BroadcastOperator } from 'socket.io';
import type { FederationConfig } from '@fedit/shared';
import type { BlobStore } from '@fedit/shared';
import type { GlobalAdapters } from './adapters.ts';
import type { Emit } from './events.ts';
import type { Ledger } from './ledger.ts';
import { nextRoundSeed } from '../federation/seed-chain-file.ts';
import { OpenRound } from './round.ts';
import { privacyAtClose, privacyAtOpen } from './round-privacy.ts';
import { RefusedError } from './refusal.ts';
import { SecureRound } from './secure-round.ts';
import { aggregatePlain, aggregateSecure, type AggregationContext } from './round-aggregate.ts';
import { setLongTimeout } from './timers.ts';
import type { FeditNamespace, FeditSocket, SocketState } from './transport.ts';

export interface RoundRunnerOptions {
  config: FederationConfig;
  ledger: Ledger;
  blobs: BlobStore;
  adapters: GlobalAdapters;
  io: FeditNamespace;
  /** Where uploads are kept, one folder per round. */
  uploadsDir: string;
  /** The federation folder: DP noise seeds are kept under its noise/ (shared federation/noise-seeds.ts). */
  federationDir: string;
  isConnected(participant: string): boolean;
  /** The participants ready now (sessions.ts). */
  readyParticipants(): string[];
  /** How many times a participant said it became ready (grows with new readiness). */
  readyAnnouncements(): number;
  /** The log's last round-closed record when the coordinator starts (what a finished federation announces). */
  lastClosed: RoundRecordOf<'round-closed'> | undefined;
  /** The secret behind the log's seed chain commitment; absent when the log commits to none. */
  seedChain?: SeedChain;
  /** Runs after each round closes, before the next opens (the orphan-blob sweep). */
  afterRound?: () => Promise<unknown>;
  emit: Emit;
}

/** Aborted rounds in a row after which no round opens until new readiness arrives. */
export const MAX_CONSECUTIVE_ABORTS = 3;

export class RoundRunner {
  /** The open round, if any. */
  current: OpenRound | undefined;
  /** The open round's secure part (secure-round.ts), in a federation with secureAggregation. */
  #secure: SecureRound | undefined;
  /** The open round's signed record: what 'round:open' hands participants. */
  #opened: RoundRecordOf<'round-open'> | undefined;
  /** The last aggregated round's signed record: what 'federation:finished' hands participants. */
  #lastClosed: RoundRecordOf<'round-closed'> | undefined;
  /** Set once every configured round was opened and the last one ended. */
  #finished = false;
  /** The open round's DP noise seed (central noise), kept in memory and in noise/round-<n>.seed. */
  #noiseSeed: Uint8Array | undefined;
  #stopping = false;
  #closing: Promise<boolean> | undefined;
  #wake: (() => void) | undefined;
  #consecutiveAborts = 0;
  /** The last round that closed at its quorum, and the selected participants it did not wait for. */
  #leftOutByQuorum: { round: number; participants: ReadonlySet<string> } | undefined;
  /** The rule and settings every round of this federation records (derived from its config). */
  readonly #ruleRef;
  readonly settings: RuleSettings;

  constructor(private readonly o: RoundRunnerOptions) {
    this.#ruleRef = ruleRefFor(o.config);
    this.#lastClosed = o.lastClosed;
    this.settings = aggregationRule(this.#ruleRef.name).settings(this.#ruleRef.config);
  }

  /** Runs rounds until the config's number is reached ({completed: true}) or stop() is called. */
  async run(): Promise<{ completed: boolean }> {
    const { ledger, config } = this.o;
    const finishedEarlier =
      ledger.state.finished !== undefined || ledger.state.aggregatedRounds >= config.rounds;
    let reason: string | undefined;
    // `rounds` counts aggregated rounds (docs/federation.md): an aborted round is retried. A
    // federation with a privacy budget may finish before (#open says why).
    while (!this.#stopping && !ledger.state.finished && ledger.state.aggregatedRounds < config.rounds) {
      await this.#waitForParticipants();
      if (this.#stopping) break;
      const round = await this.#open();
      if (typeof round === 'string') {
        reason = round;
        break;
      }
      // setLongTimeout: a deadline past 24.8 days would overflow setTimeout and close at once.
      const deadline = setLongTimeout(() => round.end(), Date.parse(round.body.deadline) - Date.now());
      // A secure round runs its key and share phases first; one that cannot go on ends at once.
      if (this.#secure && !(await this.#secure.setUp())) round.end();
      await round.ended;
      deadline.cancel();
      this.current = undefined;
      if (this.#stopping) break;
      this.#closing = (async () => {
        const closed = await this.#close(round);
        await this.o.afterRound?.(); // no round is open: the orphan-blob sweep (blob-sweep.ts)
        return closed;
      })();
      const aggregated = await this.#closing.finally(() => (this.#closing = undefined));
      this.#consecutiveAborts = aggregated ? 0 : this.#consecutiveAborts + 1;
    }
    if (this.#stopping) return { completed: false };
    await this.#recordFinished(reason);
    this.#finish(finishedEarlier);
    return { completed: true };
  }

  /**
   * Whether `participant`, selected for round `round`, is left out because the round counted its
   * quorum without it (the round is closing or closed): its update no longer counts.
   */
  leftOutByQuorum(round: number, participant: string): boolean {
    const open = this.current;
    if (open?.round === round)
      return open.quorumReached && open.selected.has(participant) && !open.counted.has(participant);
    const last = this.#leftOutByQuorum;
    return last?.round === round && last.participants.has(participant);
  }

  /** The last aggregated round's signed record (undefined before any round closed). */
  get lastClosedRecord(): RoundRecordOf<'round-closed'> | undefined {
    return this.#lastClosed;
  }

  /** Once the federation is over: its aggregated rounds and final adapter; undefined while rounds remain. */
  get finished(): { rounds: number; adapterHash: string } | undefined {
    const { state } = this.o.ledger;
    return this.#finished ? { rounds: state.aggregatedRounds, adapterHash: state.globalAdapter! } : undefined;
  }

  /**
   * Closes the log with the signed finished record (once; a log written before the record existed
   * gets it at the next start), so a log cut after it is seen to lack its end (audit.ts).
   */
  async #recordFinished(reason: string | undefined): Promise<void> {
    const { state } = this.o.ledger;
    if (state.finished) return;
    await this.o.ledger.append({
      kind: 'finished',
      body: {
        rounds: state.aggregatedRounds,
        globalAdapter: state.globalAdapter!,
        ...(reason && { reason }),
      },
    });
  }

  #finish(earlier: boolean): void {
    const { ledger } = this.o;
    this.#finished = true;
    this.announce(this.o.io.to('participants'));
    this.o.emit({
      type: 'finished',
      rounds: ledger.state.aggregatedRounds,
      adapter: ledger.state.globalAdapter!,
      earlier,
    });
  }

  /**
   * Resolves once no round is being closed: a revocation waits for it, so that the round-closed
   * record never counts an update of a participant revoked meanwhile (revocations.ts).
   */
  async idle(): Promise<void> {
    while (this.#closing) await this.#closing.catch(() => undefined);
  }

  stop(): void {
    this.#stopping = true;
    this.#secure?.stop();
    this.current?.end();
    this.nudge();
  }

  /** Someone became ready (or stopped being ready): the runner re-checks whether a round can open. */
  nudge(): void {
    this.#wake?.();
  }

  /**
   * Tells `to` (a participant who just authenticated, or everyone) about the open round, or that
   * the federation is over and which adapter it ended with: each as the signed record that says it
   * (participants read every field they act on from the record, shared/src/rounds/announcement.ts).
   */
  announce(to: FeditSocket | BroadcastOperator<ServerToClientEvents, SocketState>): void {
    if (this.#finished) {
      // The loop ends only after `rounds` (at least 1) aggregated rounds: there is a last one.
      to.emit('federation:finished', { record: this.#lastClosed! });
      return;
    }
    if (this.current && this.#opened) to.emit('round:open', { record: this.#opened });
    this.#secure?.announce(to); // a secure round's phase records, in order
  }

  /** The open round's secure part while it takes uploads (uploads.ts); undefined in a plain round. */
  get secure(): SecureRound | undefined {
    return this.current && this.#secure?.round === this.current.round ? this.#secure : undefined;
  }

  /** The open round's secure part, for the 'secagg:*' handlers; SECAGG_PHASE when there is none. */
  secureRound(round: number): SecureRound {
    const secure = this.#secure;
    if (secure?.round !== round || secure.phase === 'over')
      throw new RefusedError('SECAGG_PHASE', `round ${round} is not an open secure round`, 'payload.round');
    return secure;
  }

  /** Eligible participants (enrolled, not revoked) who are ready now, sorted: whom a round draws from. */
  #candidates(): string[] {
    const eligible = new Set(this.o.ledger.state.eligibleParticipants());
    return this.o.readyParticipants().filter((p) => eligible.has(p));
  }

  // A round opens once enough eligible participants are ready to reach the minimum; after too many
  // aborts in a row, only once a participant newly said it is ready as well.
  async #waitForParticipants(): Promise<void> {
    const { config } = this.o;
    const paused = this.#consecutiveAborts >= MAX_CONSECUTIVE_ABORTS;
    const since = this.o.readyAnnouncements();
    if (paused) this.o.emit({ type: 'paused', aborts: this.#consecutiveAborts });
    const canOpen = () =>
      this.#candidates().length >= config.participantsPerRound.minimum &&
      (!paused || this.o.readyAnnouncements() > since);
    while (!this.#stopping && !canOpen()) {
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 1000);
      });
    }
  }

  /** Opens the next round; or, when it would not fit in the privacy budget, says why none opens. */
  async #open(): Promise<OpenRound | string> {
    const { ledger, config, blobs } = this.o;
    const ready = this.#candidates();
    const { selection, quorum } = drawSelection(
      nextRoundSeed(ledger.state.seedChain, this.o.seedChain),
      ready,
      config.participantsPerRound,
    );
    const number = ledger.state.lastRound + 1;
    const privacy = await privacyAtOpen(this.o, number, selection.selected.length);
    if (typeof privacy === 'string') return privacy;
    this.#noiseSeed = privacy.seed;
    const globalAdapter = ledger.state.globalAdapter!;
    const body: RoundOpenBody = {
      rule: this.#ruleRef,
      selection,
      globalAdapter,
      deadline: new Date(Date.now() + config.roundDeadlineSeconds * 1000).toISOString(),
      quorum,
      trainingRound: ledger.state.aggregatedRounds + 1,
      // SCAFFOLD's participants fetch c from this state: signed here so that none can be fed another.
      ...(ledger.state.serverState !== undefined && { serverStateIn: ledger.state.serverState }),
      ...(privacy.seed && { noiseCommitment: noiseSeedCommitment(privacy.seed) }),
    };
    this.#opened = (await ledger.append({
      kind: 'round-open',
      round: number,
      body,
    })) as RoundRecordOf<'round-open'>;
    this.current = new OpenRound(number, body, blobs.get(globalAdapter)!);
    this.#secure = this.#startSecure(this.current, this.#opened);
    this.o.emit({ type: 'round-open', round: number, selected: selection.selected, ready, quorum });
    this.announce(this.o.io.to('participants'));
    return this.current;
  }

  #startSecure(round: OpenRound, opened: RoundRecordOf<'round-open'>): SecureRound | undefined {
    const { config, ledger, blobs, io, emit } = this.o;
    if (!config.secureAggregation) return undefined;
    const secure = new SecureRound({
      config,
      ledger,
      blobs,
      emit,
      round,
      opened,
      broadcast: () => io.to('participants'),
    });
    // The deadline (or a shutdown) during the key or share phase ends the wait for them.
    void round.ended.then(() => secure.phase === 'masked' || secure.stop());
    return secure;
  }

  /** What either aggregation path needs of the round (round-aggregate.ts). */
  #aggregation(round: OpenRound): AggregationContext {
    const { blobs, ledger, config } = this.o;
    return {
      blobs,
      ledger,
      config,
      round,
      rule: this.#ruleRef,
      settings: this.settings,
      ...(this.#noiseSeed && { noiseSeed: this.#noiseSeed }),
    };
  }

  /** Closes the round: aggregated (true) or aborted (false). */
  async #close(round: OpenRound): Promise<boolean> {
    const atQuorum = round.quorumReached;
    if (atQuorum) {
      const waitingFor = [...round.selected].filter((p) => !round.counted.has(p));
      this.#leftOutByQuorum = { round: round.round, participants: new Set(waitingFor) };
    }
    round.dropMissing((p) =>
      atQuorum
        ? `the round closed at its quorum of ${round.quorum} updates before this participant's counted`
        : this.o.isConnected(p)
          ? 'no update before the deadline'
          : 'disconnected, no update before the deadline',
    );
    // Uploads not committed by now never count: their chunks go.
    round.uploads.clear();
    rmSync(join(this.o.uploadsDir, String(round.round)), { recursive: true, force: true });
    const counted = [...round.counted.values()];
    const secure = this.#secure;
    if (secure?.abortReason !== undefined || counted.length < this.o.config.minUpdates) {
      await this.#abort(round, counted.length, secure?.abortReason);
      return false;
    }
    const unmasked = secure && (await secure.finish());
    if (this.#stopping) return false; // stopped mid-reveal: the next start aborts the round (recover)
    if (unmasked && !unmasked.ok) {
      await this.#abort(round, counted.length, unmasked.reason);
      return false;
    }
    const {
      adapter: out,
      serverStateIn,
      serverStateOut,
      clipBound,
    } = unmasked
      ? await aggregateSecure(this.#aggregation(round), unmasked.sum, unmasked.section.maskedInputs.length)
      : await aggregatePlain(this.#aggregation(round), counted);
    const sorted = [...counted].sort((a, b) =>
      a.participant < b.participant ? -1 : a.participant > b.participant ? 1 : 0,
    );
    // The means of the held-out figures the counted updates signed (absent when none did).
    const heldOut = heldOutMeans(sorted);
    const record = await this.o.ledger.append({
      kind: 'round-closed',
      round: round.round,
      body: {
        rule: this.#ruleRef,
        selection: round.body.selection,
        updates: unmasked ? [] : sorted, // a secure round names masked inputs only (`secure`)
        globalAdapterIn: round.globalAdapter,
        globalAdapterOut: out,
        ...(serverStateIn !== undefined && { serverStateIn }),
        ...(serverStateOut !== undefined && { serverStateOut }),
        dropped: round.dropped,
        metrics: {
          updates: counted.length,
          // Under secure aggregation only the total (capped) weight is known: the unmasked last word.
          examples: unmasked ? unmasked.totalWeight : counted.reduce((s, u) => s + u.exampleCount, 0),
          ...(clipBound !== undefined && { clip_bound: clipBound.toPrecision(6) }),
        },
        ...(heldOut && { heldOut }),
        ...privacyAtClose(this.o.config, this.o.ledger.state, round.round),
        ...(unmasked && { secure: unmasked.section }),
      },
    });
    this.o.adapters.add(out); // served from the moment the log names it
    // SCAFFOLD's participants fetch c from the server state (nothing in it is any one participant's).
    if (this.settings.scaffold && serverStateOut !== undefined) this.o.adapters.add(serverStateOut);
    this.#lastClosed = record as RoundRecordOf<'round-closed'>;
    this.o.io.to('participants').emit('round:closed', { record: this.#lastClosed });
    this.o.emit({
      type: 'round-closed',
      round: round.round,
      adapter: out,
      updates: counted.length,
      dropped: round.dropped,
    });
    return true;
  }

  async #abort(round: OpenRound, updates: number, why?: string): Promise<void> {
    // Said in the record: whoever reads the log sees that this round is retried, not counted.
    const retried = `an aborted round does not count toward the federation's ${this.o.config.rounds} rounds and is retried`;
    const reason = why
      ? `${why}; nothing was unmasked; ${retried}`
      : `${updates} update(s) counted, fewer than the ${this.o.config.minUpdates} the federation requires; ${retried}`;
    const record = await this.o.ledger.append({
      kind: 'round-aborted',
      round: round.round,
      body: { reason, dropped: round.dropped },
    });
    // With the round's round-open record, which names the global adapter the abort leaves.
    this.o.io.to('participants').emit('round:closed', { record, opened: this.#opened });
    this.o.emit({ type: 'round-aborted', round: round.round, reason });
  }
}
