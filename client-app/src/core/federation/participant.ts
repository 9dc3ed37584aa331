// A participant taking part in a federation's rounds: the loop the CLI's `fedit client run` and
// the desktop app drive. It prints nothing; it reports through events (events.ts).
//
//   start -> load the session once: model (the federation's?), tokenizer, data rows (session.ts)
//         -> connect and authenticate (again after every drop) -> say it is ready to train
//            ('participant:ready'; rounds select only among the ready, and a bare `client join`
//            never says it: its model and data were never loaded)
//   'round:open' (selected) -> a round task: train from memory, upload (round.ts, round-io.ts);
//                  in a federation with secureAggregation, a secure round task instead
//                  (secure-round.ts), to which the round's 'secagg:phase' records are routed
//   'round:closed' -> record the round in the history, its result and its folder settled
//                  (closed-round.ts) -> wait for the next one
//   'federation:finished' (at the end of the last round, or at once on connecting to a finished
//                  federation) -> fetch the final global adapter into the adapter cache, record it
//                  as its round's result -> stop; on a federation that had already ended, start
//                  fetches it before loading anything (finished.ts)
//
// Each of those events is read from the signed round record it carries (the connection checks it,
// announced.ts); one older than a record seen before is refused here (a replay), before anything.
// This file is the event loop alone: connection events become round tasks, one at a time, and
// round tasks become events. An upload interrupted by a dropped connection or a restarted client
// resumes as long as the round is open; one whose round has closed is dropped.
import { EventEmitter } from 'node:events';
import {
  FeditError,
  type ContentHash,
  type FederationFinished,
  type RecordPosition,
  type RoundClosed,
  type Tensor,
} from '@fedit/shared';
import { membershipConnection } from './join.ts';
import { checkNewestAnnounced, type AnnouncedRoundOpen } from './announced.ts';
import { keepClosedRoundAdapter, keepClosedRoundReceipt, settleClosedRound } from './closed-round.ts';
import { isTransient } from './errors.ts';
import { fetchFinishedFederation, recordFinalResult } from './finished.ts';
import { sayReady, waitingWords } from './readiness.ts';
import type {
  FinalAdapter,
  ParticipantEvents,
  ParticipantStatus,
  RoundHistoryEntry,
  StatusEvent,
} from './events.ts';
import { startRoundWork, type PhaseInbox } from './secure-round.ts';
import { droppedByRestartWords, droppedSecureRounds } from './secure-marker.ts';
import { keepFinalAdapter, keepGlobalAdapter } from './round-io.ts';
import { federationHeldOut, measureFinalAdapter } from './held-out.ts';
import { adoptSettings, loadSession, type ParticipantOptions, type ParticipantSession } from './session.ts';
import { adapterCachePath, removeRoundDirs } from './store.ts';

export type {
  FinalAdapter,
  ParticipantEvents,
  ParticipantStatus,
  ProgressEvent,
  RoundHistoryEntry,
  StatusEvent,
} from './events.ts';
export { participantSeed } from './round.ts';
export { checkBaseModel, type ParticipantOptions } from './session.ts';

/** What `start` resolves with. */
export interface ParticipantResult {
  /** 'finished': the federation's last round closed; 'max-rounds': maxRounds reached; 'stopped': aborted. */
  reason: 'finished' | 'max-rounds' | 'stopped';
  history: RoundHistoryEntry[];
  /** When finished: the federation's final global adapter, hash-checked, in the adapter cache. */
  finalAdapter?: FinalAdapter;
}

interface RoundTask {
  round: number;
  /** A secure round's phase records go here (secure-round.ts). */
  phases?: PhaseInbox;
  controller: AbortController;
  done: Promise<void>;
}

export class Participant extends EventEmitter<ParticipantEvents> {
  #status: ParticipantStatus = 'stopped';
  #history = new Map<number, RoundHistoryEntry>();
  #session: ParticipantSession | undefined;
  #task: RoundTask | undefined;
  /** Round events are handled one after another, in arrival order. */
  #queue: Promise<void> = Promise.resolve();
  #result: { resolve: (r: ParticipantResult) => void; reject: (e: unknown) => void } | undefined;
  #outcome: ParticipantResult['reason'] | undefined;
  #finalAdapter: FinalAdapter | undefined;
  #fatal: unknown;

  get status(): ParticipantStatus {
    return this.#status;
  }

  /** Rounds seen since start, oldest first. */
  get history(): RoundHistoryEntry[] {
    return [...this.#history.values()].sort((a, b) => a.round - b.round);
  }

  /**
   * Fetches global adapter `hash` into the adapter cache over this participant's own connection
   * (a second connection with the same identity would push this one off the coordinator), for the
   * app's chat. Undefined when the participant is not running (a one-off connection may then be
   * used); throws when it runs but is not connected now (reconnecting).
   */
  async fetchGlobalAdapter(hash: ContentHash): Promise<Map<string, Tensor> | undefined> {
    const session = this.#session;
    if (!session) return undefined;
    if (session.connection.state !== 'ready') {
      throw new FeditError('NOT_CONNECTED', 'not connected to the coordinator right now (reconnecting)');
    }
    return keepGlobalAdapter(session, hash);
  }

  /** The participant's id in the federation (after start). */
  get participantId(): string | undefined {
    return this.#session?.membership.participantId;
  }

  /**
   * Runs until the federation's last round closes, `maxRounds` rounds have closed, or `signal`
   * aborts. Rejects on a failure that retrying cannot fix (wrong base model, unusable data, the
   * coordinator refusing this participant, another federation at the address).
   */
  async start(options: ParticipantOptions): Promise<ParticipantResult> {
    if (this.#session) throw new FeditError('PARTICIPANT_RUNNING', 'this participant is already running');
    this.#history.clear();
    this.#outcome = undefined;
    this.#finalAdapter = undefined;
    this.#fatal = undefined;
    try {
      const ended = await fetchFinishedFederation(options, (m) => this.emit('warning', m));
      if (ended) {
        this.#setStatus({
          status: 'stopped',
          message: `the federation has ended: your adapter is saved at ${ended.path}`,
        });
        return { reason: 'finished', history: [], finalAdapter: ended };
      }
      const loaded = await loadSession(options, () =>
        this.#setStatus({ status: 'connecting', message: 'loading the base model' }),
      );
      this.emit('report', loaded.data.report);
      for (const round of await droppedSecureRounds(loaded.home, loaded.membership.federation))
        this.emit('warning', droppedByRestartWords(round));
      options.signal?.throwIfAborted();
      const { membership, identity } = loaded;
      const { requestTimeoutMs, reconnectionDelayMax } = options;
      const connection = membershipConnection(membership, identity, {
        requestTimeoutMs,
        reconnectionDelayMax,
      });
      const session: ParticipantSession = {
        ...loaded,
        connection,
        stop: new AbortController(),
        roundsClosed: 0,
      };
      this.#session = session;
      const finished = new Promise<ParticipantResult>(
        (resolve, reject) => (this.#result = { resolve, reject }),
      );
      const onAbort = () => this.#finish('stopped');
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#wire(session);
      this.#setStatus({ status: 'connecting', message: `connecting to ${membership.url}` });
      connection.open();
      try {
        return await finished;
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
    } catch (error) {
      if (options.signal?.aborted && !(error instanceof FeditError)) {
        this.#setStatus({ status: 'stopped' });
        return { reason: 'stopped', history: this.history };
      }
      this.#setStatus({ status: 'error', message: (error as Error).message });
      throw error;
    }
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  #setStatus(event: StatusEvent): void {
    this.#status = event.status;
    this.emit('status', event);
  }

  #wire(session: ParticipantSession): void {
    const { connection } = session;
    connection.on('state', (state) => {
      this.emit('connection', state);
      if (state === 'connecting' && !this.#task && this.#outcome === undefined) {
        this.#setStatus({ status: 'connecting', message: `connecting to ${session.membership.url}` });
      }
    });
    connection.on('warning', (message) => this.emit('warning', message));
    connection.on('server-error', (e) =>
      this.emit('warning', `the coordinator reported ${e.code}: ${e.message}`),
    );
    connection.on('failed', (error) => this.#die(error));
    connection.on('authenticated', () =>
      this.#enqueue(async () => {
        await this.#refreshSettings(session);
        const ready = await sayReady(session.connection);
        if (!this.#task) this.#setStatus({ status: 'waiting', message: waitingWords(ready) });
      }),
    );
    connection.on('round:open', (open) => this.#enqueue(() => this.#onRoundOpen(session, open)));
    // At once, not queued: the round task waits for it. A forked phase record stops the participant.
    connection.on('secagg:phase', (record, identities) => {
      try {
        if (this.#task?.round === record.round) this.#task.phases?.deliver(record, identities);
      } catch (error) {
        this.#die(error);
      }
    });
    connection.on('round:closed', (closed) => {
      // Stop work for a round that is over at once, not after what is queued.
      if (this.#task && this.#task.round <= closed.round) this.#task.controller.abort();
      this.#enqueue(() => this.#onRoundClosed(session, closed));
    });
    connection.on('federation:finished', (finished) => {
      this.#task?.controller.abort();
      this.#enqueue(() => this.#onFederationFinished(session, finished));
    });
  }

  #enqueue(work: () => Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      if (this.#outcome !== undefined) return;
      try {
        await work();
      } catch (error) {
        this.#die(error);
      }
    });
  }

  /** A failure that retrying cannot fix: stop and reject `start`. */
  #die(error: unknown): void {
    if (this.#outcome !== undefined) return;
    this.#fatal = error;
    this.#finish('stopped');
  }

  #finish(reason: ParticipantResult['reason']): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = reason;
    const session = this.#session;
    if (!session) return;
    session.stop.abort();
    this.#task?.controller.abort();
    void (async () => {
      await this.#task?.done.catch(() => undefined);
      await this.#queue.catch(() => undefined);
      await session.trainers.release().catch(() => undefined);
      session.connection.close();
      this.#session = undefined;
      this.#task = undefined;
      const result = this.#result!;
      this.#result = undefined;
      if (this.#fatal !== undefined) {
        result.reject(this.#fatal); // `start` reports the 'error' status
      } else {
        const final = this.#finalAdapter;
        this.#setStatus({
          status: 'stopped',
          message:
            reason === 'stopped'
              ? 'stopped'
              : final
                ? `the federation has ended: your adapter is saved at ${final.path}`
                : 'the federation is over',
        });
        result.resolve({ reason, history: this.history, ...(final && { finalAdapter: final }) });
      }
    })();
  }

  // ---- settings --------------------------------------------------------------------------------

  /** Asks for the federation's settings and adopts them if they changed. */
  async #refreshSettings(session: ParticipantSession): Promise<void> {
    let info;
    try {
      info = await session.connection.federationInfo();
    } catch (error) {
      if (isTransient(error)) return; // asked again after the next authentication
      throw error;
    }
    const adopted = await adoptSettings(session, info);
    if (!adopted) return;
    if (adopted.report) this.emit('report', adopted.report);
    this.emit('settings', session.settings);
  }

  // ---- rounds ----------------------------------------------------------------------------------

  /** A record older than one seen (a replay) or unlike the one seen there stops the participant. */
  #checkNewest(session: ParticipantSession, signed: RecordPosition, what: string): Promise<void> {
    return checkNewestAnnounced(session.home, session.membership.federation, signed, what);
  }

  #entry(round: number, selected: boolean): RoundHistoryEntry {
    let entry = this.#history.get(round);
    if (!entry) {
      entry = { round, selected, uploaded: false };
      this.#history.set(round, entry);
    }
    entry.selected ||= selected;
    return entry;
  }

  async #onRoundOpen(session: ParticipantSession, open: AnnouncedRoundOpen): Promise<void> {
    await this.#checkNewest(session, open.signed, `round ${open.round}'s announcement`);
    const selected = open.selected.includes(session.connection.participantId);
    this.emit('round-open', { round: open.round, selected, deadline: open.deadline });
    this.#entry(open.round, selected);
    const task = this.#task;
    if (task && task.round === open.round) return; // announced again after a reconnection: already on it
    if (task) {
      task.controller.abort();
      await task.done.catch(() => undefined);
    }
    await removeRoundDirs(session.home, session.membership.federation, selected ? open.round : undefined);
    if (!selected) {
      this.#setStatus({
        status: 'waiting',
        round: open.round,
        message: `not selected for round ${open.round}; waiting for the next round`,
      });
      return;
    }
    const controller = new AbortController();
    const newTask: RoundTask = { round: open.round, controller, done: Promise.resolve() };
    const context = {
      session,
      open,
      signal: AbortSignal.any([controller.signal, session.stop.signal]),
      events: this,
      setStatus: (event: StatusEvent) => this.#setStatus(event),
    };
    const work = startRoundWork(context, this.#entry(open.round, true));
    newTask.phases = work.phases;
    newTask.done = work.done.finally(() => {
      if (this.#task === newTask) this.#task = undefined;
    });
    this.#task = newTask;
    // The task runs beside the queue, so that 'round:closed' and reconnections are handled meanwhile.
    newTask.done.catch((error: unknown) => this.#die(error));
  }

  async #onRoundClosed(session: ParticipantSession, closed: RoundClosed): Promise<void> {
    await this.#checkNewest(session, closed.signed, `round ${closed.round}'s result`);
    const task = this.#task;
    if (task && task.round <= closed.round) {
      task.controller.abort();
      await task.done.catch(() => undefined);
    }
    const entry = this.#entry(closed.round, false);
    entry.outcome = closed.outcome;
    entry.adapterHash = closed.adapterHash;
    entry.updates = closed.participants;
    if (closed.heldOut) Object.assign(entry, federationHeldOut(closed.heldOut));
    if (closed.privacy) entry.epsilon = closed.privacy.epsilon;
    await settleClosedRound(session, closed);
    await keepClosedRoundReceipt(session, closed, (message) => this.emit('warning', message));
    this.emit('round', { ...entry });
    session.roundsClosed++;
    // The federation's end is not guessed from the round number: the coordinator says so
    // ('federation:finished', right after the last round's 'round:closed').
    const { maxRounds } = session.options;
    if (maxRounds !== undefined && session.roundsClosed >= maxRounds) {
      await keepClosedRoundAdapter(session, closed, (message) => this.emit('warning', message));
      return this.#finish('max-rounds');
    }
    this.#setStatus({ status: 'waiting', round: closed.round, message: 'waiting for the next round' });
  }

  /**
   * The federation is over: fetch its final adapter (selected in the last round or not, online at
   * its end or coming back later), then stop. A download cut by a dropped connection is taken up
   * again when the coordinator repeats 'federation:finished' after the next authentication.
   */
  async #onFederationFinished(session: ParticipantSession, finished: FederationFinished): Promise<void> {
    await this.#checkNewest(session, finished.signed, "the federation's end");
    const task = this.#task;
    if (task) {
      task.controller.abort();
      await task.done.catch(() => undefined);
    }
    await removeRoundDirs(session.home, session.membership.federation, undefined);
    const hash = finished.adapterHash;
    // Not 'downloading', which is a round's step (and the app shows it as one).
    this.#setStatus({
      status: 'waiting',
      message: `the federation has ended after ${finished.rounds} rounds; fetching its final adapter`,
    });
    const kept = await keepFinalAdapter(session, hash, (message) => this.emit('warning', message));
    if (!kept) return; // the coordinator repeats 'federation:finished' once this participant is back
    await recordFinalResult(session.home, session.membership.federation, finished);
    this.#finalAdapter = { hash, path: adapterCachePath(session.home, hash), rounds: finished.rounds };
    await measureFinalAdapter(session, hash, finished.round, (message) => this.emit('warning', message));
    this.#finish('finished');
  }
}
