// A participant taking part in a federation's rounds: the loop the CLI's `fedit client run` and
// the desktop app drive. It prints nothing; it reports through events.
//
//   start -> load the base model, check it is the federation's -> validate the data once (report)
//         -> connect and authenticate (again after every drop)
//   'round:open' (selected) -> fetch the global adapter by hash (cached) -> train from it
//         -> sign the envelope, keep it and the payload on disk -> upload sealed chunks -> commit
//   'round:closed' -> record the round in the history -> wait for the next one
//
// Only the envelope and sealed chunks of the trained LoRA tensors leave the machine: never the
// data, never a plaintext tensor. An upload interrupted by a dropped connection or a restarted
// client resumes (the same signed envelope, from the first chunk the coordinator lacks) as long as
// the round is open; one whose round has closed is dropped.
import { EventEmitter } from 'node:events';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  loadCheckpoint,
  loadTokenizer,
  loraTensorSpecs,
  type ExecutionProvider,
  type LoadedModel,
  type LoraConfig,
  type LoraTarget,
} from '@fedit/kernels';
import {
  FeditError,
  envelopeDigest,
  envelopeId,
  participantUploadKey,
  readAdapter,
  sealChunk,
  sha256,
  tensorToF32,
  type ContentHash,
  type Identity,
  type RoundClosed,
  type RoundOpen,
  type Tensor,
} from '@fedit/shared';
import { prepareDataset, type DatasetFormat, type DatasetReport } from '../data/index.ts';
import { runLocalTraining, type LocalTrainingOptions } from '../train/local-training.ts';
import { cacheAdapter, downloadAdapter, readCachedAdapter } from './adapters.ts';
import { FederationConnection, type ConnectionState } from './connection.ts';
import { FederationError, isTransient } from './errors.ts';
import { parseFederationSettings, type FederationSettings } from './settings.ts';
import {
  ROUNDS_DIR,
  membershipPath,
  requireIdentity,
  resolveHome,
  roundDir,
  selectMembership,
  writeMembership,
} from './store.ts';
import type { Membership } from './store.ts';
import {
  buildUpdate,
  dropPendingUpload,
  loadPendingUpload,
  savePendingUpload,
  type PendingUpload,
} from './update.ts';

export type ParticipantStatus =
  'connecting' | 'waiting' | 'downloading' | 'training' | 'uploading' | 'done-round' | 'stopped' | 'error';

export interface StatusEvent {
  status: ParticipantStatus;
  /** The round the status is about, when it is about one. */
  round?: number;
  /** A sentence for people. */
  message?: string;
}

export interface ProgressEvent {
  round: number;
  phase: 'download' | 'training' | 'upload';
  /** Chunks or steps done so far, and in all. */
  done: number;
  total: number;
  /** Training only. */
  loss?: number;
  tokensPerSecond?: number;
  etaSeconds?: number;
}

/** What happened in one round, from this participant's side. */
export interface RoundHistoryEntry {
  round: number;
  selected: boolean;
  /** Mean loss of the local steps, when this participant trained. */
  trainLoss?: number;
  /** Training examples the update was weighted by. */
  examples?: number;
  /** True once the coordinator acknowledged the commit. */
  uploaded: boolean;
  /** How the round ended, from 'round:closed' (absent if the participant stopped before). */
  outcome?: 'aggregated' | 'aborted';
  /** The global adapter after the round, and how many updates went into it. */
  adapterHash?: string;
  updates?: number;
  /** Why this participant's update did not count, when it did not. */
  error?: string;
}

export interface ParticipantEvents {
  status: [StatusEvent];
  /** The data validation report, once at start (again if the federation's template changes). */
  report: [DatasetReport];
  progress: [ProgressEvent];
  /** A round was announced ('selected': this participant is in it). */
  'round-open': [{ round: number; selected: boolean; deadline: number }];
  /** A round ended; the entry is also in `history`. */
  round: [RoundHistoryEntry];
  connection: [ConnectionState];
  /** Something went wrong that the participant works around (it keeps running). */
  warning: [message: string];
  /** The federation's settings changed (the membership file was updated). */
  settings: [FederationSettings];
  /** Where local training runs: the provider the trainer started (a GPU that fails falls back to the CPU). */
  device: [ExecutionProvider];
}

export interface ParticipantOptions {
  /** Base model folder: must be the federation's base model. */
  modelDir: string;
  /** The participant's data files (they never leave the machine). */
  dataFiles: string[];
  format?: DatasetFormat;
  /** The fedit home folder (default: resolveHome()). */
  home?: string;
  /** Which joined federation (default: the only one). */
  federationId?: string;
  provider?: ExecutionProvider;
  threads?: number;
  /** Aborting stops the participant (training saves a checkpoint first; uploads stay on disk). */
  signal?: AbortSignal;
  /** Stop after this many rounds have closed (default: run until the federation's last round). */
  maxRounds?: number;
  /** Plaintext bytes per upload chunk (default DEFAULT_CHUNK_BYTES). */
  chunkBytes?: number;
  /** How long a request waits for its answer (default 30 s). */
  requestTimeoutMs?: number;
  /** Longest pause between reconnection attempts, ms (default 5000). */
  reconnectionDelayMax?: number;
}

/** What `start` resolves with. */
export interface ParticipantResult {
  /** 'finished': the federation's last round closed; 'max-rounds': maxRounds reached; 'stopped': aborted. */
  reason: 'finished' | 'max-rounds' | 'stopped';
  history: RoundHistoryEntry[];
}

/** Codes with which the coordinator says the round no longer takes this update. */
const ROUND_GONE = new Set(['ROUND_CLOSED', 'UPDATE_STALE', 'UPDATE_NOT_SELECTED']);
/** Codes with which the coordinator says this update (or one of this participant's) is already counted. */
const ALREADY_COUNTED = new Set(['UPDATE_REPLAY', 'UPDATE_DUPLICATE']);
/** Chunks the coordinator may report damaged in transit, in a row, before the upload gives up. */
const MAX_CORRUPT_RETRIES = 5;
/** Pause before retrying after a dropped connection or an unanswered request. */
const RETRY_PAUSE_MS = 1000;
/** How long after a round's deadline an upload keeps trying (clocks differ; the coordinator decides). */
const DEADLINE_GRACE_MS = 60_000;

interface RoundTask {
  round: number;
  controller: AbortController;
  done: Promise<void>;
}

interface Session {
  options: ParticipantOptions;
  home: string;
  identity: Identity;
  membership: Membership;
  settings: FederationSettings;
  model: LoadedModel;
  connection: FederationConnection;
  /** Stops everything: the caller's signal, a fatal error, or the end of the federation. */
  stop: AbortController;
  roundsClosed: number;
}

/** Combines a participant id and a round's seed into the seed of this participant's local run. */
export function participantSeed(roundSeed: number, participantId: string): number {
  const own = Number.parseInt(participantId.slice(0, 8), 16) >>> 0;
  return (Math.imul(roundSeed >>> 0, 0x9e3779b1) ^ own) >>> 0;
}

export class Participant extends EventEmitter<ParticipantEvents> {
  #status: ParticipantStatus = 'stopped';
  #history = new Map<number, RoundHistoryEntry>();
  #session: Session | undefined;
  #task: RoundTask | undefined;
  /** Round events are handled one after another, in arrival order. */
  #queue: Promise<void> = Promise.resolve();
  #result: { resolve: (r: ParticipantResult) => void; reject: (e: unknown) => void } | undefined;
  #outcome: ParticipantResult['reason'] | undefined;
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
    return this.#keepGlobalAdapter(session, hash);
  }

  /** Global adapter `hash` from the cache, or downloaded over the session's connection and cached. */
  async #keepGlobalAdapter(session: Session, hash: ContentHash): Promise<Map<string, Tensor>> {
    const cached = await readCachedAdapter(session.home, hash);
    if (cached) return cached;
    const { bytes, tensors } = await downloadAdapter(hash, (h, index) =>
      session.connection.request('adapter:get', { hash: h, index }),
    );
    await cacheAdapter(session.home, hash, bytes);
    return tensors;
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
    this.#fatal = undefined;
    try {
      const home = resolveHome(options.home);
      const identity = await requireIdentity(home);
      const membership = await selectMembership(home, options.federationId);
      const settings = parseFederationSettings(
        membership.config,
        membershipPath(home, membership.federation),
      );
      this.#setStatus({ status: 'connecting', message: 'loading the base model' });
      const model = await loadCheckpoint(options.modelDir);
      checkBaseModel(model, settings, options.modelDir);
      this.emit('report', await validateData(options, settings));
      options.signal?.throwIfAborted();

      const connection = new FederationConnection({
        url: membership.url,
        federation: membership.federation,
        coordinator: membership.coordinator,
        identity,
        auth: { kind: 'prove' },
        requestTimeoutMs: options.requestTimeoutMs,
        reconnectionDelayMax: options.reconnectionDelayMax,
      });
      const session: Session = {
        options,
        home,
        identity,
        membership,
        settings,
        model,
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

  #wire(session: Session): void {
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
        if (!this.#task) this.#setStatus({ status: 'waiting', message: 'waiting for the next round' });
      }),
    );
    connection.on('round:open', (open) => {
      this.emit('round-open', {
        round: open.round,
        selected: open.selected.includes(connection.participantId),
        deadline: open.deadline,
      });
      this.#enqueue(() => this.#onRoundOpen(session, open));
    });
    connection.on('round:closed', (closed) => {
      // Stop work for a round that is over at once, not after what is queued.
      if (this.#task && this.#task.round <= closed.round) this.#task.controller.abort();
      this.#enqueue(() => this.#onRoundClosed(session, closed));
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
      session.connection.close();
      this.#session = undefined;
      this.#task = undefined;
      const result = this.#result!;
      this.#result = undefined;
      if (this.#fatal !== undefined) {
        result.reject(this.#fatal); // `start` reports the 'error' status
      } else {
        this.#setStatus({
          status: 'stopped',
          message: reason === 'stopped' ? 'stopped' : 'the federation is over',
        });
        result.resolve({ reason, history: this.history });
      }
    })();
  }

  // ---- settings --------------------------------------------------------------------------------

  /** Asks for the federation's settings and adopts them if they changed. */
  async #refreshSettings(session: Session): Promise<void> {
    let info;
    try {
      info = await session.connection.request('federation:info', {});
    } catch (error) {
      if (isTransient(error)) return; // asked again after the next authentication
      throw error;
    }
    if (info.configHash === session.membership.configHash) return;
    const settings = parseFederationSettings(
      info.config,
      `the settings of federation ${session.membership.federation}`,
    );
    checkBaseModel(session.model, settings, session.options.modelDir);
    const previous = session.settings.training;
    if (
      settings.training.template !== previous.template ||
      settings.training.cutoffLen !== previous.cutoffLen ||
      settings.training.trainOnInputs !== previous.trainOnInputs
    ) {
      this.emit('report', await validateData(session.options, settings));
    }
    session.settings = settings;
    session.membership = { ...session.membership, config: info.config, configHash: info.configHash };
    await writeMembership(session.home, session.membership);
    this.emit('settings', settings);
  }

  // ---- rounds ----------------------------------------------------------------------------------

  #entry(round: number, selected: boolean): RoundHistoryEntry {
    let entry = this.#history.get(round);
    if (!entry) {
      entry = { round, selected, uploaded: false };
      this.#history.set(round, entry);
    }
    entry.selected ||= selected;
    return entry;
  }

  async #onRoundOpen(session: Session, open: RoundOpen): Promise<void> {
    if (open.configHash !== session.membership.configHash) await this.#refreshSettings(session);
    const selected = open.selected.includes(session.connection.participantId);
    this.#entry(open.round, selected);
    const task = this.#task;
    if (task && task.round === open.round) return; // announced again after a reconnection: already on it
    if (task) {
      task.controller.abort();
      await task.done.catch(() => undefined);
    }
    await this.#cleanRounds(session, selected ? open.round : undefined);
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
    newTask.done = this.#runRound(session, open, controller.signal).finally(() => {
      if (this.#task === newTask) this.#task = undefined;
    });
    this.#task = newTask;
    // The task runs beside the queue, so that 'round:closed' and reconnections are handled meanwhile.
    newTask.done.catch((error: unknown) => this.#die(error));
  }

  async #onRoundClosed(session: Session, closed: RoundClosed): Promise<void> {
    const task = this.#task;
    if (task && task.round <= closed.round) {
      task.controller.abort();
      await task.done.catch(() => undefined);
    }
    const entry = this.#entry(closed.round, false);
    entry.outcome = closed.outcome;
    entry.adapterHash = closed.adapterHash;
    entry.updates = closed.participants;
    await dropPendingUpload(roundDir(session.home, session.membership.federation, closed.round));
    await rm(roundDir(session.home, session.membership.federation, closed.round), {
      recursive: true,
      force: true,
    });
    this.emit('round', { ...entry });
    session.roundsClosed++;
    const last = session.settings.rounds;
    const over =
      last !== undefined && closed.round >= last
        ? 'finished'
        : session.options.maxRounds !== undefined && session.roundsClosed >= session.options.maxRounds
          ? 'max-rounds'
          : undefined;
    if (over) {
      // Keep the adapter this round produced before the connection goes: a participant only
      // downloads global adapters for rounds it trains in, and after the federation's end its
      // coordinator may be gone, taking what the federation learned with it.
      if (closed.outcome === 'aggregated') {
        await this.#keepGlobalAdapter(session, closed.adapterHash).catch((error: unknown) =>
          this.emit(
            'warning',
            `could not keep round ${closed.round}'s global adapter: ${(error as Error).message}`,
          ),
        );
      }
      return this.#finish(over);
    }
    this.#setStatus({ status: 'waiting', round: closed.round, message: 'waiting for the next round' });
  }

  /** Removes the folders of rounds other than `keep` (finished, or left behind by a crash). */
  async #cleanRounds(session: Session, keep: number | undefined): Promise<void> {
    const base = join(session.home, ROUNDS_DIR, session.membership.federation);
    const entries = await readdir(base).catch(() => [] as string[]);
    for (const name of entries) {
      if (name !== String(keep)) await rm(join(base, name), { recursive: true, force: true });
    }
  }

  async #runRound(session: Session, open: RoundOpen, signal: AbortSignal): Promise<void> {
    const { home, identity, membership } = session;
    const dir = roundDir(home, membership.federation, open.round);
    const entry = this.#entry(open.round, true);
    const aborted = () => signal.aborted || session.stop.signal.aborted;
    try {
      let pending: PendingUpload | undefined;
      try {
        pending = await loadPendingUpload(dir, {
          identity,
          federation: membership.federation,
          round: open.round,
        });
      } catch (error) {
        this.emit('warning', `${(error as Error).message}; training again`);
        await dropPendingUpload(dir);
      }
      if (pending && pending.envelope.globalAdapterHash !== open.globalAdapterHash) {
        await dropPendingUpload(dir);
        pending = undefined;
      }
      if (pending) {
        this.emit('warning', `resuming the upload of round ${open.round} kept from before`);
      } else {
        pending = await this.#train(session, open, dir, signal);
        if (!pending) return; // stopped during training
      }
      entry.trainLoss = pending.trainLoss;
      entry.examples = pending.envelope.exampleCount;
      if (aborted()) return;
      this.#setStatus({
        status: 'uploading',
        round: open.round,
        message: `sending the update of round ${open.round}`,
      });
      const outcome = await this.#upload(session, open, pending, signal);
      if (outcome === 'stopped') return;
      await dropPendingUpload(dir);
      entry.uploaded = true;
      this.#setStatus({
        status: 'done-round',
        round: open.round,
        message:
          outcome === 'committed'
            ? `update of round ${open.round} sent; waiting for the round to close`
            : `the coordinator already counted this participant's update for round ${open.round}`,
      });
    } catch (error) {
      if (aborted() && (isTransient(error) || !(error instanceof FeditError))) return;
      if (!(error instanceof FeditError)) throw error; // a bug: let it stop the participant
      const remote = error instanceof FederationError && error.remote;
      entry.error = error.message;
      if (remote || ROUND_GONE.has(error.code)) await dropPendingUpload(dir);
      this.emit('warning', `round ${open.round}: ${error.message}`);
      this.#setStatus({ status: 'waiting', round: open.round, message: 'waiting for the next round' });
    }
  }

  /** Downloads the global adapter, trains from it, and keeps the signed update on disk. */
  async #train(
    session: Session,
    open: RoundOpen,
    dir: string,
    signal: AbortSignal,
  ): Promise<PendingUpload | undefined> {
    const { options, settings, identity, membership } = session;
    this.#setStatus({
      status: 'downloading',
      round: open.round,
      message: `fetching the global adapter of round ${open.round}`,
    });
    const global = await this.#fetchAdapter(session, open, signal);
    const lora: LoraConfig = {
      rank: settings.lora.rank,
      alpha: settings.lora.alpha,
      dropout: settings.lora.dropout,
      targets: settings.lora.targets as LoraTarget[],
    };
    checkAdapterSchema(global, session.model, lora, open.globalAdapterHash);
    const initialAdapter = new Map<string, Float32Array>();
    for (const [name, tensor] of global) initialAdapter.set(name, tensorToF32(tensor));

    this.#setStatus({ status: 'training', round: open.round, message: `training round ${open.round}` });
    const adapterOut = join(dir, 'adapter');
    const training: LocalTrainingOptions = {
      modelDir: options.modelDir,
      dataFiles: options.dataFiles,
      format: options.format,
      adapterOut,
      lora,
      template: settings.training.template,
      cutoffLen: settings.training.cutoffLen,
      trainOnInputs: settings.training.trainOnInputs,
      batchSize: open.training.batchSize,
      epochs: 1,
      maxSteps: open.training.steps,
      lr: open.training.learningRate,
      schedule: 'constant',
      heldOutFraction: 0,
      checkpointEvery: 10,
      seed: participantSeed(open.training.seed, membership.participantId),
      provider: options.provider,
      threads: options.threads,
      initialAdapter,
      signal: AbortSignal.any([signal, session.stop.signal]),
      onEvent: (e) => {
        if (e.type === 'step') {
          this.emit('progress', {
            round: open.round,
            phase: 'training',
            done: e.step,
            total: e.totalSteps,
            loss: e.loss,
            tokensPerSecond: e.tokensPerSecond,
            etaSeconds: e.etaSeconds,
          });
        } else if (e.type === 'ready') this.emit('device', e.provider);
        else if (e.type === 'warning') this.emit('warning', e.message);
      },
    };
    let result;
    try {
      result = await runLocalTraining(training);
    } catch (error) {
      // A checkpoint of other settings in this round's folder (the federation changed them): start over.
      if (!(
        error instanceof FeditError &&
        (error.code === 'CHECKPOINT_MISMATCH' || error.code === 'CHECKPOINT_CORRUPT')
      )) {
        throw error;
      }
      result = await runLocalTraining({ ...training, restart: true });
    }
    if (!result.completed) return undefined;
    const adapter = await readAdapter(adapterOut);
    const tensors = adapter.tensors;
    if (tensors.size !== global.size || [...global.keys()].some((n) => !tensors.has(n))) {
      throw new FederationError(
        'FEDERATION_ADAPTER',
        "the trained adapter does not hold the global adapter's tensors",
      );
    }
    const trainLoss = result.losses.reduce((s, l) => s + l, 0) / Math.max(1, result.losses.length);
    const pending = buildUpdate({
      identity,
      federation: membership.federation,
      round: open.round,
      globalAdapterHash: open.globalAdapterHash,
      exampleCount: result.report.usable,
      tensors,
      trainLoss,
      chunkBytes: options.chunkBytes,
    });
    await savePendingUpload(dir, pending);
    await rm(adapterOut, { recursive: true, force: true });
    return pending;
  }

  /** The global adapter `open` names: from the cache, or fetched (and cached). */
  async #fetchAdapter(session: Session, open: RoundOpen, signal: AbortSignal): Promise<Map<string, Tensor>> {
    const hash = open.globalAdapterHash;
    const cached = await readCachedAdapter(session.home, hash);
    if (cached) return cached;
    const { bytes, tensors } = await downloadAdapter(
      hash,
      (h, index) =>
        this.#retrying(session, open, signal, () =>
          session.connection.request('adapter:get', { hash: h, index }),
        ),
      (done, total) => this.emit('progress', { round: open.round, phase: 'download', done, total }),
    );
    await cacheAdapter(session.home, hash, bytes);
    return tensors;
  }

  /**
   * Runs `request` until it succeeds, waiting for the connection to be authenticated again after
   * every transient failure. Gives up (a transient error) when the participant stops, the round's
   * task is aborted, or the round's deadline has long passed.
   */
  async #retrying<T>(
    session: Session,
    open: RoundOpen,
    signal: AbortSignal,
    request: () => Promise<T>,
  ): Promise<T> {
    const both = AbortSignal.any([signal, session.stop.signal]);
    for (;;) {
      if (both.aborted) throw stoppedError();
      if (Date.now() > open.deadline + DEADLINE_GRACE_MS) {
        throw new FederationError(
          'ROUND_CLOSED',
          `round ${open.round} passed its deadline (${new Date(open.deadline).toISOString()}) before the coordinator could be reached`,
        );
      }
      try {
        await session.connection.ready({ signal: both });
      } catch (error) {
        if (both.aborted) throw stoppedError();
        throw error;
      }
      try {
        return await request();
      } catch (error) {
        if (!isTransient(error)) throw error;
        this.emit('warning', `${(error as Error).message}; trying again`);
        await pause(RETRY_PAUSE_MS, both);
      }
    }
  }

  /** Sends `pending` ('update:begin', sealed chunks from resumeFrom, 'update:commit'). */
  async #upload(
    session: Session,
    open: RoundOpen,
    pending: PendingUpload,
    signal: AbortSignal,
  ): Promise<'committed' | 'already-counted' | 'stopped'> {
    const { envelope, payload } = pending;
    const uploadId = envelopeId(envelope);
    const key = participantUploadKey(
      session.identity.box,
      session.membership.coordinator.box,
      envelopeDigest(envelope),
      envelope.chunkCount,
    );
    const request = session.connection.request.bind(session.connection);
    let corrupt = 0;
    try {
      for (;;) {
        // One pass: begin (the coordinator says where to resume), the missing chunks, commit. A
        // dropped connection starts a new pass once authenticated again.
        const begin = await this.#retrying(session, open, signal, () =>
          request('update:begin', { envelope }),
        );
        if (begin.uploadId !== uploadId) {
          throw new FederationError(
            'FEDERATION_PROTOCOL',
            `the coordinator named the upload ${begin.uploadId}, but its envelope id is ${uploadId}`,
          );
        }
        try {
          for (let index = begin.resumeFrom; index < envelope.chunkCount; index++) {
            if (signal.aborted || session.stop.signal.aborted) return 'stopped';
            const start = index * envelope.chunkBytes;
            const data = sealChunk(key, index, payload.subarray(start, start + envelope.chunkBytes));
            await request('update:chunk', { uploadId, index, data, sha256: sha256(data) });
            this.emit('progress', {
              round: open.round,
              phase: 'upload',
              done: index + 1,
              total: envelope.chunkCount,
            });
          }
          await request('update:commit', { uploadId });
          return 'committed';
        } catch (error) {
          if (isTransient(error)) {
            this.emit('warning', `${(error as Error).message}; resuming the upload`);
            await pause(RETRY_PAUSE_MS, AbortSignal.any([signal, session.stop.signal])).catch(
              () => undefined,
            );
            continue;
          }
          // Damaged in transit: the next pass sends the chunk again.
          if (isDamagedInTransit(error)) {
            if (++corrupt <= MAX_CORRUPT_RETRIES) continue;
          }
          throw error;
        }
      }
    } catch (error) {
      if (error instanceof FederationError && ALREADY_COUNTED.has(error.code)) return 'already-counted';
      if (signal.aborted || session.stop.signal.aborted) {
        if (isTransient(error) || (error as FeditError).code === 'PARTICIPANT_STOPPED') return 'stopped';
      }
      throw error;
    }
  }
}

// ---- helpers -----------------------------------------------------------------------------------

/** The coordinator says a chunk arrived damaged (its SHA-256 does not match): send it again. */
function isDamagedInTransit(error: unknown): boolean {
  if (!(error instanceof FederationError) || !error.remote) return false;
  return (
    error.code === 'CHUNK_CORRUPT' ||
    (error.code === 'PROTOCOL_INCONSISTENT' && error.field === 'payload.sha256')
  );
}

function stoppedError(): FederationError {
  return new FederationError('PARTICIPANT_STOPPED', 'the participant stopped', { transient: true });
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(stoppedError());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(stoppedError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Throws FEDERATION_MODEL_MISMATCH unless `model` is the federation's base model. */
export function checkBaseModel(model: LoadedModel, settings: FederationSettings, modelDir: string): void {
  if (model.identity !== settings.baseModel.identity) {
    throw new FederationError(
      'FEDERATION_MODEL_MISMATCH',
      `the model in ${modelDir} (identity ${model.identity}) is not federation ${settings.id}'s base model ${settings.baseModel.name} (identity ${settings.baseModel.identity}); use the same checkpoint as the other participants`,
    );
  }
}

/** Validates the data with the federation's prompt settings; FEDERATION_DATA when nothing is usable. */
async function validateData(
  options: ParticipantOptions,
  settings: FederationSettings,
): Promise<DatasetReport> {
  const tokenizer = await loadTokenizer(options.modelDir);
  const prepared = await prepareDataset(
    options.dataFiles.map((path) => (options.format ? { path, format: options.format } : path)),
    {
      tokens: {
        tokenizer,
        template: settings.training.template,
        cutoffLen: settings.training.cutoffLen,
        trainOnInputs: settings.training.trainOnInputs,
      },
    },
  );
  if (prepared.report.usable === 0) {
    throw new FederationError(
      'FEDERATION_DATA',
      `${options.dataFiles.join(', ')}: no usable training example with the federation's settings (template ${settings.training.template}, cutoff ${settings.training.cutoffLen} tokens); see the report`,
    );
  }
  return prepared.report;
}

/** Throws FEDERATION_ADAPTER unless the global adapter has exactly the tensors the federation's LoRA calls for. */
function checkAdapterSchema(
  global: Map<string, Tensor>,
  model: LoadedModel,
  lora: LoraConfig,
  hash: ContentHash,
): void {
  const specs = loraTensorSpecs(model.config, lora);
  for (const spec of specs) {
    const tensor = global.get(spec.name);
    if (!tensor) {
      throw new FederationError(
        'FEDERATION_ADAPTER',
        `the global adapter ${hash} lacks ${spec.name}, which the federation's LoRA settings call for`,
      );
    }
    if (tensor.shape.join(',') !== spec.shape.join(',')) {
      throw new FederationError(
        'FEDERATION_ADAPTER',
        `the global adapter ${hash} has ${spec.name} of shape [${tensor.shape}], but the federation's LoRA settings call for [${spec.shape}]`,
      );
    }
  }
  if (global.size !== specs.length) {
    const known = new Set(specs.map((s) => s.name));
    const extra = [...global.keys()].find((n) => !known.has(n));
    throw new FederationError(
      'FEDERATION_ADAPTER',
      `the global adapter ${hash} has ${extra}, which the federation's LoRA settings do not call for`,
    );
  }
}
