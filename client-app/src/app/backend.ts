// The desktop app's backend: everything behind `window.fedit` (./api.ts), on the participant's core.
// Electron's main process hosts it behind the preload; the development shell hosts it behind a
// local WebSocket. Either way the renderer is untrusted, so every argument is checked
// (./validate.ts) before it is used.
//
// It is a composition of parts, each in its own file:
//
//   ./settings-file.ts     app/settings.json: AppSettings, the chosen model and data, takingPart
//   ./history-file.ts      app/history-<federation>.json: the rounds this computer saw
//   ./kept-files.ts        what happens to either when it is damaged or cannot be read
//   ./selections.ts        the model folder and data files, as the worker checked them
//   ./worker-supervisor.ts the training worker: start, pause, stop, the power and idle limits, and
//                          a restart when it dies (it resumes from what the participant keeps)
//   ./live-status.ts       the live status: a pure fold of the participant's events and the
//                          supervisor's, the same one the page runs on the events it receives
//
// and keeps, in the home folder it is given (the OS user-data folder in the app), beside those
// files: the core's identity.json, federations/, adapters/, rounds/ (core/federation/store.ts),
// chat-adapters/ (the global adapter chat uses) and logs/app.log (./app-log.ts).

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fingerprint, publicIdentity } from '@fedit/shared';
import type { FederationSettings, RoundHistoryEntry } from '../core/federation/index.ts';
// The federation's files directly, not its index: the index also exports the Participant, which
// loads the compute engine (onnxruntime), and that belongs in the training worker only.
import {
  checkDisplayName,
  enrol,
  inspectInvite,
  readInvite,
  type InviteInspection,
} from '../core/federation/join.ts';
import { parseFederationSettings } from '../core/federation/settings.ts';
import {
  ensurePrivateDir,
  listMemberships,
  loadOrCreateIdentity,
  readIdentity,
  removeMembership,
  type Membership,
} from '../core/federation/store.ts';
import type {
  AppEvent,
  AppSettings,
  AppState,
  ChatSource,
  FederationSummary,
  FeditAppApi,
  LiveStatus,
  ParticipantEvent,
} from './api.ts';
import { AppLog } from './app-log.ts';
import { BackgroundWork } from './background.ts';
import { describeChatSource, globalAdapters } from './chat-source.ts';
import { probeWebGpu } from './device.ts';
import { describeRound, summarize } from './federation-summary.ts';
import { HistoryFile } from './history-file.ts';
import { KeptFiles } from './kept-files.ts';
import { initialLiveStatus, reduceLiveStatus, type LiveStatusEvent } from './live-status.ts';
import { Selections } from './selections.ts';
import { DEFAULT_SETTINGS, SettingsFile } from './settings-file.ts';
import { HEADLESS_MONITOR, type SystemMonitor } from './system-monitor.ts';
import {
  AppError,
  MAX_INVITE_LENGTH,
  MAX_PROMPT_LENGTH,
  chatId,
  existingFiles,
  existingPath,
  settingsPatch,
  text,
} from './validate.ts';
import { WorkerSupervisor, type SupervisorHost } from './worker-supervisor.ts';
import type { RunOptions, WorkerLink } from './worker-protocol.ts';

export { describeChatSource } from './chat-source.ts';
export { DEFAULT_SETTINGS } from './settings-file.ts';

export const APP_DIR = 'app';
export const LOGS_DIR = 'logs';
/** Longest chat reply, in tokens. */
export const CHAT_MAX_NEW_TOKENS = 96;
/** Invites read recently, kept until the person joins one. */
const KEPT_INSPECTIONS = 4;

export interface BackendOptions {
  /** The app's folder: the OS user-data folder (Electron's app.getPath('userData')). */
  home: string;
  worker: WorkerLink;
  /** Power and idle state for the training limits (default: HEADLESS_MONITOR). */
  monitor?: SystemMonitor;
  /** Whether WebGPU can run here (default: probeWebGpu, once). */
  probeGpu?: () => Promise<boolean>;
  /** Opens a folder in the system's file manager (Electron: shell.openPath). */
  openPath?: (path: string) => Promise<void>;
  /** How often the limits are checked, ms (default 5000). */
  limitPollMs?: number;
  /** First wait before restarting a crashed worker, ms (doubles per crash; default 1000). */
  restartDelayMs?: number;
  /** CPU threads of this machine (default os.availableParallelism()). */
  cpuThreads?: number;
}

export class AppBackend implements FeditAppApi {
  readonly home: string;
  readonly log: AppLog;
  readonly #options: BackendOptions;
  readonly #worker: WorkerLink;
  readonly #cpuThreads: number;
  readonly #listeners = new Set<(event: AppEvent) => void>();
  readonly #background: BackgroundWork;
  readonly #settingsFile: SettingsFile;
  readonly #history: HistoryFile;
  readonly #selections: Selections;
  readonly #supervisor: WorkerSupervisor;

  #settings: AppSettings = { ...DEFAULT_SETTINGS };
  #identity: string | undefined;
  #membership: Membership | undefined;
  #federation: FederationSettings | undefined;
  #inspections = new Map<string, InviteInspection>();
  #gpuAvailable = false;
  #gpuProbe: Promise<void> = Promise.resolve();
  /** The provider the trainer reported it started on, and the one it was asked for. */
  #trainedOn: { asked: 'cpu' | 'webgpu'; used: 'cpu' | 'webgpu' } | undefined;
  #status: LiveStatus = initialLiveStatus();
  #closed = false;

  private constructor(options: BackendOptions) {
    this.#options = options;
    this.home = options.home;
    this.#worker = options.worker;
    this.#cpuThreads = options.cpuThreads ?? availableParallelism();
    this.log = new AppLog(join(this.home, LOGS_DIR));
    this.#background = new BackgroundWork(this.log);
    const files = new KeptFiles(this.log);
    const appDir = join(this.home, APP_DIR);
    this.#settingsFile = new SettingsFile(join(appDir, 'settings.json'), {
      files,
      log: this.log,
      cpuThreads: this.#cpuThreads,
    });
    this.#history = new HistoryFile(appDir, files);
    this.#selections = new Selections(this.#worker, this.log);
    this.#supervisor = new WorkerSupervisor(this.#supervisorHost(), {
      worker: this.#worker,
      monitor: options.monitor ?? HEADLESS_MONITOR,
      log: this.log,
      background: this.#background,
      limitPollMs: options.limitPollMs,
      restartDelayMs: options.restartDelayMs,
    });
  }

  /** Opens the backend on `options.home`: reads the settings, identity and membership, probes the GPU. */
  static async open(options: BackendOptions): Promise<AppBackend> {
    const backend = new AppBackend(options);
    await backend.#load();
    return backend;
  }

  async #load(): Promise<void> {
    await ensurePrivateDir(this.home);
    this.log.info(`app started; home ${this.home}`);
    const stored = await this.#settingsFile.read();
    this.#settings = stored.settings;
    const identity = await readIdentity(this.home);
    this.#identity = identity && fingerprint(publicIdentity(identity));
    await this.#loadMembership();
    const probe = this.#options.probeGpu ?? (async () => (await probeWebGpu()).available);
    this.#gpuProbe = probe().then(
      (available) => {
        this.#gpuAvailable = available;
        this.log.info(`WebGPU ${available ? 'is available' : 'is not available'} on this machine`);
        this.#fold({ type: 'app:device', device: this.#statusDevice() });
        this.#emitState();
      },
      (error: unknown) => this.log.warn(`the WebGPU probe failed: ${(error as Error).message}`),
    );
    this.#fold({ type: 'app:device', device: this.#statusDevice() });
    // The selections of the last session, checked again (the files may have changed since).
    if (stored.modelDir) await this.#selections.checkModel(stored.modelDir);
    if (stored.dataFiles?.length) {
      await this.#selections
        .prepareData(stored.dataFiles, this.#federation)
        .catch((error: unknown) =>
          this.log.warn(`the data chosen last time cannot be read: ${(error as Error).message}`),
        );
    }
    if (stored.takingPart && this.#readyProblem() === undefined) {
      this.log.info('taking part again, as when the app was last closed');
      this.#background.run(this.#supervisor.start());
    }
  }

  // ---- the API ---------------------------------------------------------------------------------

  async getState(): Promise<AppState> {
    return this.#state();
  }

  onEvent(listener: (event: AppEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async createIdentity(): Promise<AppState> {
    const { identity, created } = await loadOrCreateIdentity(this.home);
    this.#identity = fingerprint(publicIdentity(identity));
    if (created) this.log.info(`identity created: ${this.#identity}`);
    return this.#changed();
  }

  async updateSettings(patch: Partial<AppSettings>): Promise<AppState> {
    const checked = settingsPatch(patch, this.#cpuThreads);
    const before = this.#settings;
    this.#settings = { ...before, ...checked };
    await this.#saveSettings();
    this.log.info(`settings changed: ${JSON.stringify(checked)}`);
    this.#fold({ type: 'app:device', device: this.#statusDevice() });
    const restart =
      before.device !== this.#settings.device || before.maxThreads !== this.#settings.maxThreads;
    if (restart && this.#supervisor.intent === 'running') {
      this.log.info('restarting training with the new device and thread settings');
    }
    await this.#supervisor.refresh();
    return this.#changed();
  }

  async inspectInvite(invite: string): Promise<FederationSummary> {
    const textInvite = this.#inviteText(invite);
    const inspection = await inspectInvite(textInvite, { home: this.home, timeoutMs: 15_000 });
    this.#inspections.set(textInvite, inspection);
    while (this.#inspections.size > KEPT_INSPECTIONS) {
      this.#inspections.delete(this.#inspections.keys().next().value!);
    }
    this.log.info(`read the settings of federation ${inspection.federation} at ${inspection.url}`);
    return summarize(
      inspection.settings,
      inspection.url,
      inspection.coordinatorFingerprint,
      inspection.membership,
    );
  }

  async joinFederation(invite: string): Promise<AppState> {
    const textInvite = this.#inviteText(invite);
    const inspection = this.#inspections.get(textInvite);
    if (!inspection) {
      throw new AppError(
        'APP_NOT_READY',
        "read the federation's settings before joining: paste the invite and review what it asks of you",
      );
    }
    if (!this.#identity)
      throw new AppError('APP_NOT_READY', 'create your identity before joining a federation');
    if (this.#membership && this.#membership.federation !== inspection.federation) {
      throw new AppError(
        'APP_BUSY',
        `this app takes part in one federation at a time: leave ${this.#membership.federation} (${this.#federation?.name}) first`,
      );
    }
    const displayName = this.#settings.displayName ? checkDisplayName(this.#settings.displayName) : undefined;
    const joined = await enrol(inspection, { home: this.home, displayName, timeoutMs: 15_000 });
    this.#inspections.delete(textInvite);
    const { federation, displayName: name, participantId } = joined.membership;
    this.log.info(
      `${joined.enrolled ? 'joined' : 'rejoined'} federation ${federation} as ${name} (participant ${participantId})`,
    );
    await this.#loadMembership();
    await this.#selections.recheckData(this.#federation);
    return this.#changed();
  }

  async leaveFederation(): Promise<AppState> {
    const membership = this.#membership;
    if (!membership) throw new AppError('APP_NOT_READY', 'this computer is not in a federation');
    await this.#supervisor.stop();
    await removeMembership(this.home, membership.federation);
    await this.#history.remove();
    this.log.info(`left federation ${membership.federation}`);
    this.#membership = undefined;
    this.#federation = undefined;
    this.#fold({ type: 'app:left' });
    await this.#saveSettings();
    await this.#selections.recheckData(this.#federation);
    return this.#changed();
  }

  async chooseModel(dir?: string): Promise<AppState> {
    if (dir === undefined) throw new AppError('APP_ARGUMENT', 'choose a model folder');
    this.#refuseWhileTakingPart('change the model');
    const path = await existingPath(dir, 'the model folder', 'dir');
    await this.#selections.checkModel(path);
    await this.#saveSettings();
    await this.#selections.recheckData(this.#federation);
    return this.#changed();
  }

  async chooseData(files?: string[]): Promise<AppState> {
    if (files === undefined) throw new AppError('APP_ARGUMENT', 'choose one or more data files');
    this.#refuseWhileTakingPart('change the data');
    const paths = await existingFiles(files, 'the data files');
    await this.#selections.prepareData(paths, this.#federation);
    await this.#saveSettings();
    return this.#changed();
  }

  async start(): Promise<AppState> {
    const problem = this.#readyProblem();
    if (problem) throw new AppError('APP_NOT_READY', problem);
    this.log.info('taking part');
    await this.#takePart();
    return this.#changed();
  }

  async pause(): Promise<AppState> {
    if (this.#supervisor.intent === 'idle') throw new AppError('APP_NOT_READY', 'training has not started');
    this.log.info('paused by the participant');
    const paused = this.#supervisor.pause();
    await this.#saveSettings();
    await paused;
    return this.#changed();
  }

  async resume(): Promise<AppState> {
    if (this.#supervisor.intent === 'idle') return this.start();
    this.log.info('resumed by the participant');
    await this.#takePart();
    return this.#changed();
  }

  async chat(id: string, prompt: string): Promise<void> {
    const chat = chatId(id);
    const question = text(prompt, 'the message', { min: 1, max: MAX_PROMPT_LENGTH });
    if (!question.trim()) throw new AppError('APP_ARGUMENT', 'the message is empty');
    const model = this.#selections.model(undefined);
    if (!model?.identity) throw new AppError('APP_NOT_READY', 'choose a working model folder first');
    const adapters = globalAdapters(this.#history.entries);
    try {
      const result = await this.#worker.request(
        {
          kind: 'chat',
          chatId: chat,
          prompt: question,
          home: this.home,
          federationId: this.#membership?.federation,
          modelDir: model.dir,
          adapters,
          provider: this.#device(),
          threads: this.#settings.maxThreads,
          maxNewTokens: CHAT_MAX_NEW_TOKENS,
        },
        (piece) => this.#emit({ type: 'chat', id: chat, text: piece, done: false }),
      );
      const newest = adapters[0];
      const source: ChatSource = {
        adapter: result.adapter,
        newest: result.adapter !== undefined && result.adapter.hash === newest?.hash,
        problem: result.problem,
        newestKnown: newest,
      };
      const used = describeChatSource(source);
      if (result.problem) this.log.warn(`chat: ${used}`);
      this.#emit({ type: 'chat', id: chat, text: '', done: true, adapter: used, source });
    } catch (error) {
      const message = (error as Error).message;
      this.log.warn(`chat failed: ${message}`);
      this.#emit({ type: 'chat', id: chat, text: '', done: true, error: message });
    }
  }

  async openLogs(): Promise<void> {
    await this.log.flush();
    await ensurePrivateDir(this.log.dir);
    await this.#options.openPath?.(this.log.dir);
  }

  async readLogs(): Promise<string> {
    return this.log.tail();
  }

  /** Stops taking part (saving training state) and ends the worker. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.log.info('app closing');
    await this.#supervisor.close();
    await this.#background.settled();
    await this.log.close();
    this.#listeners.clear();
  }

  // ---- taking part -----------------------------------------------------------------------------

  async #takePart(): Promise<void> {
    const started = this.#supervisor.start();
    await this.#saveSettings();
    await started;
  }

  #supervisorHost(): SupervisorHost {
    return {
      runOptions: async () => {
        await this.#gpuProbe; // 'auto' needs to know whether there is a GPU
        return this.#runOptions() ?? this.#readyProblem() ?? 'cannot start';
      },
      limits: () => this.#settings,
      status: () => this.#status,
      finishedMessage: () =>
        this.#federation
          ? `all ${this.#federation.rounds} rounds are done; thank you for taking part`
          : 'all rounds are done; thank you for taking part',
      onStatus: (event) => this.#fold(event),
      onParticipant: (event) => this.#onParticipant(event),
      onChanged: () =>
        this.#background.run(
          this.#saveSettings().then(() => this.#emitState()),
          'cannot save the settings',
        ),
    };
  }

  #runOptions(): RunOptions | undefined {
    const model = this.#selections.model(this.#federation);
    const data = this.#selections.data;
    if (!this.#membership || !model?.ok || !data) return undefined;
    return {
      home: this.home,
      federationId: this.#membership.federation,
      modelDir: model.dir,
      dataFiles: data.files,
      provider: this.#device(),
      threads: this.#settings.maxThreads,
    };
  }

  /** What the backend itself does with the participant's events, before the status folds them. */
  #onParticipant(event: ParticipantEvent): void {
    switch (event.type) {
      case 'round':
        this.#background.run(this.#recordRound(event.data), 'cannot save the round history');
        break;
      case 'warning':
        this.log.warn(event.data);
        break;
      case 'report':
        this.#selections.setReport(event.data);
        break;
      case 'round-open':
        this.log.info(
          `round ${event.data.round} opened; this computer ${event.data.selected ? 'is selected' : 'is not selected'}`,
        );
        break;
      case 'device': {
        const asked = this.#device();
        const used = event.data === 'webgpu' ? 'webgpu' : 'cpu';
        this.#trainedOn = { asked, used };
        if (asked !== used) this.log.warn(`training was asked to run on ${asked} but runs on ${used}`);
        break;
      }
    }
    this.#fold(event);
  }

  async #recordRound(entry: RoundHistoryEntry): Promise<void> {
    await this.#history.record(entry);
    this.log.info(`round ${entry.round}: ${describeRound(entry)}`);
    this.#emitState();
  }

  // ---- state -----------------------------------------------------------------------------------

  /**
   * Folds `event` into the live status, and tells the page: a participant's event as it is (the
   * page folds it the same way), a change of the backend's own as the status it leads to.
   */
  #fold(event: LiveStatusEvent): void {
    const before = this.#status;
    this.#status = reduceLiveStatus(before, event);
    const { state, message, pausedBy } = this.#status;
    if (state !== before.state) {
      const why = message ?? (pausedBy && `by ${pausedBy}`);
      this.log.info(`status ${state}${why ? `: ${why}` : ''}`);
    }
    if (event.type.startsWith('app:')) {
      if (this.#status !== before) this.#emit({ type: 'status', status: structuredClone(this.#status) });
    } else {
      this.#emit({ type: 'participant', event: event as ParticipantEvent });
    }
  }

  #state(): AppState {
    return {
      identity: this.#identity,
      settings: { ...this.#settings },
      federation: this.#summary(),
      model: this.#selections.model(this.#federation),
      data: this.#selections.data,
      status: structuredClone(this.#status),
      history: this.#history.entries,
      logsDir: this.log.dir,
      gpuAvailable: this.#gpuAvailable,
      homeDir: this.home,
      cpuThreads: this.#cpuThreads,
    };
  }

  #summary(): FederationSummary | undefined {
    const m = this.#membership;
    const s = this.#federation;
    if (!m || !s) return undefined;
    return summarize(s, m.url, fingerprint(m.coordinator), m);
  }

  #changed(): AppState {
    const state = this.#state();
    this.#emit({ type: 'state', state });
    return state;
  }

  #emitState(): void {
    if (!this.#closed) this.#changed();
  }

  #emit(event: AppEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.log.warn(`an event listener failed: ${(error as Error).message}`);
      }
    }
  }

  /** The provider training is asked to use (the setting, and whether there is a GPU). */
  #device(): 'cpu' | 'webgpu' {
    if (this.#settings.device === 'cpu') return 'cpu';
    return this.#gpuAvailable ? 'webgpu' : 'cpu';
  }

  /**
   * Where training runs, for the status: what the trainer last reported it started on, while the
   * provider asked for is still the same (a GPU that failed on the real graph fails again).
   */
  #statusDevice(): 'cpu' | 'webgpu' {
    const trained = this.#trainedOn;
    const asked = this.#device();
    return trained?.asked === asked ? trained.used : asked;
  }

  /** What is missing before training can start, in words; undefined when nothing is. */
  #readyProblem(): string | undefined {
    if (!this.#identity) return 'create your identity first';
    if (!this.#membership) return 'join a federation first: paste the invite you were sent';
    return this.#selections.problem(this.#federation);
  }

  #refuseWhileTakingPart(what: string): void {
    if (this.#supervisor.intent === 'running')
      throw new AppError('APP_BUSY', `pause training before you ${what}`);
  }

  #inviteText(invite: unknown): string {
    const value = text(invite, 'the invite', { min: 1, max: MAX_INVITE_LENGTH }).trim();
    readInvite(value); // a mistyped invite fails here, naming what is wrong, before any network
    return value;
  }

  // ---- files -----------------------------------------------------------------------------------

  async #loadMembership(): Promise<void> {
    // The app takes part in one federation; a home the CLI also used may hold more.
    const [membership] = await listMemberships(this.home);
    this.#membership = membership;
    this.#federation = membership && parseFederationSettings(membership.config);
    await this.#history.open(membership?.federation);
  }

  async #saveSettings(): Promise<void> {
    await this.#settingsFile.save({
      settings: this.#settings,
      modelDir: this.#selections.model(undefined)?.dir,
      dataFiles: this.#selections.data?.files,
      takingPart: this.#supervisor.intent === 'running',
    });
  }
}
