// The desktop app's backend: everything behind `window.fedit` (./api.ts), on the participant's core.
// Electron's main process hosts it behind the preload; the development shell hosts it behind a
// local WebSocket. Either way the renderer is untrusted, so every argument is checked
// (./validate.ts) before it is used.
//
// What it keeps, in the home folder it is given (the OS user-data folder in the app):
//
//   identity.json, federations/, adapters/, rounds/   the core's (see core/federation/store.ts)
//   app/settings.json                                  AppSettings, the chosen model and data files
//   app/history-<federation>.json                      the rounds this computer saw
//   chat-adapters/                                     the global adapter chat uses, as a PEFT folder
//   logs/app.log                                       what happened, for people (./app-log.ts)
//
// Heavy work (training, model checks, data validation, chat) runs in the training worker behind a
// WorkerLink. When the worker dies the backend says so ('crashed') and starts a new one, which
// resumes from what the participant keeps on disk.

import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { readFile, rename, rm } from 'node:fs/promises';
import { fingerprint, isErrno, publicIdentity } from '@fedit/shared';
import type { DatasetReport } from '../core/data/index.ts';
// The federation's files directly, not its index: the index also exports the Participant, which
// loads the compute engine (onnxruntime), and that belongs in the training worker only.
import {
  checkDisplayName,
  enrol,
  inspectInvite,
  readInvite,
  type InviteInspection,
} from '../core/federation/join.ts';
import type { RoundHistoryEntry } from '../core/federation/participant.ts';
import { parseFederationSettings, type FederationSettings } from '../core/federation/settings.ts';
import {
  ensurePrivateDir,
  listMemberships,
  loadOrCreateIdentity,
  readIdentity,
  removeMembership,
  writePrivateFile,
  type Membership,
} from '../core/federation/store.ts';
import type {
  AppEvent,
  AppSettings,
  AppState,
  ChatSource,
  DataSelection,
  FederationSummary,
  FeditAppApi,
  LiveStatus,
  ModelCheck,
} from './api.ts';
import { AppLog } from './app-log.ts';
import { describeRound, shortHash, summarize } from './federation-summary.ts';
import { probeWebGpu } from './device.ts';
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
import type { FromWorker, KnownAdapter, RunOptions, WorkerLink } from './worker-protocol.ts';

export const APP_DIR = 'app';
export const LOGS_DIR = 'logs';
const SETTINGS_FILE = 'settings.json';

export const DEFAULT_SETTINGS: AppSettings = {
  device: 'auto',
  maxThreads: 0,
  onlyWhenPluggedIn: true,
  onlyWhenIdle: false,
  displayName: '',
};

/** Training examples shown as previews. */
const PREVIEWS = 3;
/** Longest chat reply, in tokens. */
export const CHAT_MAX_NEW_TOKENS = 96;
/** Status events closer together than this are merged (training steps on small models are fast). */
const STATUS_THROTTLE_MS = 100;
/** Crashes within CRASH_WINDOW_MS after which the backend stops restarting the worker. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 10 * 60_000;

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

interface SettingsFile {
  version: 1;
  settings: AppSettings;
  modelDir?: string;
  dataFiles?: string[];
  /** The person chose to take part (start) and has not paused or left since. */
  takingPart?: boolean;
}

/** What the person wants the worker to do. */
type Intent = 'idle' | 'running' | 'paused';

export class AppBackend implements FeditAppApi {
  readonly home: string;
  readonly log: AppLog;
  readonly #worker: WorkerLink;
  readonly #monitor: SystemMonitor;
  readonly #options: BackendOptions;
  readonly #cpuThreads: number;
  #listeners = new Set<(event: AppEvent) => void>();

  #settings: AppSettings = { ...DEFAULT_SETTINGS };
  #identity: string | undefined;
  #membership: Membership | undefined;
  #federationSettings: FederationSettings | undefined;
  #model: { dir: string; identity?: string; problem?: string } | undefined;
  #data: DataSelection | undefined;
  #history: RoundHistoryEntry[] = [];
  /**
   * Files the app keeps that are there but could not be read (locked by a virus scanner, no
   * permission, too many open files): not damaged, so never set aside, and never written over
   * with what this session knows without them.
   */
  #unreadable = new Set<string>();
  #gpuAvailable = false;
  #gpuProbe: Promise<void>;
  #inspections = new Map<string, InviteInspection>();

  #intent: Intent = 'idle';
  /** A limit holding training back now. */
  #held: 'power' | 'idle' | undefined;
  /** What the worker was last told: running a run, holding it paused, or nothing. */
  #workerRun: { id: number; key: string; state: 'running' | 'paused' } | undefined;
  #runCounter = 0;
  #status: LiveStatus;
  #lossRound: number | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #limitTimer: NodeJS.Timeout | undefined;
  #unsubscribeMonitor: (() => void) | undefined;
  #crashes: number[] = [];
  /** The provider the trainer reported it started on, and the one it was asked for. */
  #trainedOn: { asked: 'cpu' | 'webgpu'; used: 'cpu' | 'webgpu' } | undefined;
  /** Who waits for a run's 'ended' (leaving waits for the participant to let go of its files). */
  #endedWaiters = new Map<number, () => void>();
  #pending = new Set<Promise<void>>();
  #restartTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: BackendOptions) {
    this.#options = options;
    this.home = options.home;
    this.#worker = options.worker;
    this.#monitor = options.monitor ?? HEADLESS_MONITOR;
    this.#cpuThreads = options.cpuThreads ?? availableParallelism();
    this.log = new AppLog(join(this.home, LOGS_DIR));
    this.#status = { state: 'idle', device: 'cpu', losses: [] };
    this.#gpuProbe = Promise.resolve();
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
    const stored = await this.#readSettingsFile();
    this.#settings = stored.settings;
    const identity = await readIdentity(this.home);
    this.#identity = identity && fingerprint(publicIdentity(identity));
    await this.#loadMembership();
    this.#worker.on('message', (message) => this.#onWorkerMessage(message));
    this.#worker.on('crash', (exit) => this.#onWorkerCrash(exit));
    this.#unsubscribeMonitor = this.#monitor.subscribe?.(() => this.#checkLimits());
    const probe = this.#options.probeGpu ?? (async () => (await probeWebGpu()).available);
    this.#gpuProbe = probe().then(
      (available) => {
        this.#gpuAvailable = available;
        this.log.info(`WebGPU ${available ? 'is available' : 'is not available'} on this machine`);
        this.#status.device = this.#statusDevice();
        this.#emitState();
      },
      (error: unknown) => this.log.warn(`the WebGPU probe failed: ${(error as Error).message}`),
    );
    this.#status.device = this.#statusDevice();
    // The selections of the last session, checked again (the files may have changed since).
    if (stored.modelDir) await this.#checkModel(stored.modelDir).catch(() => undefined);
    if (stored.dataFiles?.length) {
      await this.#prepareData(stored.dataFiles).catch((error: unknown) =>
        this.log.warn(`the data chosen last time cannot be read: ${(error as Error).message}`),
      );
    }
    if (stored.takingPart && this.#readyProblem() === undefined) {
      this.log.info('taking part again, as when the app was last closed');
      this.#intent = 'running';
      this.#background(this.#apply());
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
    this.#status.device = this.#statusDevice();
    const restart =
      before.device !== this.#settings.device || before.maxThreads !== this.#settings.maxThreads;
    if (restart && this.#workerRun)
      this.log.info('restarting training with the new device and thread settings');
    this.#checkLimits(false);
    await this.#apply();
    return this.#changed();
  }

  async inspectInvite(invite: string): Promise<FederationSummary> {
    const textInvite = this.#inviteText(invite);
    const inspection = await inspectInvite(textInvite, { home: this.home, timeoutMs: 15_000 });
    this.#inspections.set(textInvite, inspection);
    while (this.#inspections.size > 4) this.#inspections.delete(this.#inspections.keys().next().value!);
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
        `this app takes part in one federation at a time: leave ${this.#membership.federation} (${this.#federationSettings?.name}) first`,
      );
    }
    const displayName = this.#settings.displayName ? checkDisplayName(this.#settings.displayName) : undefined;
    const joined = await enrol(inspection, { home: this.home, displayName, timeoutMs: 15_000 });
    this.#inspections.delete(textInvite);
    this.log.info(
      `${joined.enrolled ? 'joined' : 'rejoined'} federation ${joined.membership.federation} as ${joined.membership.displayName} (participant ${joined.membership.participantId})`,
    );
    await this.#loadMembership();
    await this.#recheckSelections();
    return this.#changed();
  }

  async leaveFederation(): Promise<AppState> {
    const membership = this.#membership;
    if (!membership) throw new AppError('APP_NOT_READY', 'this computer is not in a federation');
    this.#intent = 'idle';
    await this.#stopWorker();
    await removeMembership(this.home, membership.federation);
    await rm(this.#historyPath(membership.federation), { force: true });
    this.log.info(`left federation ${membership.federation}`);
    this.#membership = undefined;
    this.#federationSettings = undefined;
    this.#history = [];
    this.#setStatus({ state: 'idle', message: undefined, round: undefined, progress: undefined, losses: [] });
    await this.#saveSettings();
    await this.#recheckSelections();
    return this.#changed();
  }

  async chooseModel(dir?: string): Promise<AppState> {
    if (dir === undefined) throw new AppError('APP_ARGUMENT', 'choose a model folder');
    this.#refuseWhileTakingPart('change the model');
    const path = await existingPath(dir, 'the model folder', 'dir');
    await this.#checkModel(path);
    await this.#saveSettings();
    if (this.#data) await this.#prepareData(this.#data.files).catch(() => undefined);
    return this.#changed();
  }

  async chooseData(files?: string[]): Promise<AppState> {
    if (files === undefined) throw new AppError('APP_ARGUMENT', 'choose one or more data files');
    this.#refuseWhileTakingPart('change the data');
    const paths = await existingFiles(files, 'the data files');
    await this.#prepareData(paths);
    await this.#saveSettings();
    return this.#changed();
  }

  async start(): Promise<AppState> {
    const problem = this.#readyProblem();
    if (problem) throw new AppError('APP_NOT_READY', problem);
    this.#intent = 'running';
    this.log.info('taking part');
    await this.#saveSettings();
    this.#checkLimits(false);
    await this.#apply();
    return this.#changed();
  }

  async pause(): Promise<AppState> {
    if (this.#intent === 'idle') throw new AppError('APP_NOT_READY', 'training has not started');
    this.#intent = 'paused';
    this.log.info('paused by the participant');
    await this.#saveSettings();
    await this.#apply();
    return this.#changed();
  }

  async resume(): Promise<AppState> {
    if (this.#intent === 'idle') return this.start();
    this.#intent = 'running';
    this.log.info('resumed by the participant');
    await this.#saveSettings();
    this.#checkLimits(false);
    await this.#apply();
    return this.#changed();
  }

  async chat(id: string, prompt: string): Promise<void> {
    const chat = chatId(id);
    const question = text(prompt, 'the message', { min: 1, max: MAX_PROMPT_LENGTH });
    if (!question.trim()) throw new AppError('APP_ARGUMENT', 'the message is empty');
    const model = this.#model;
    if (!model?.identity) throw new AppError('APP_NOT_READY', 'choose a working model folder first');
    const adapters = this.#globalAdapters();
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
    clearTimeout(this.#statusTimer);
    clearTimeout(this.#restartTimer);
    clearInterval(this.#limitTimer);
    this.#unsubscribeMonitor?.();
    this.log.info('app closing');
    await this.#worker.dispose();
    this.#settleEnded();
    while (this.#pending.size) await Promise.all([...this.#pending]);
    await this.log.close();
    this.#listeners.clear();
  }

  /** The global adapters of the rounds this computer saw close, newest first, one per hash. */
  #globalAdapters(): KnownAdapter[] {
    const seen = new Set<string>();
    const adapters: KnownAdapter[] = [];
    for (const entry of [...this.#history].reverse()) {
      if (entry.outcome !== 'aggregated' || !entry.adapterHash || seen.has(entry.adapterHash)) continue;
      seen.add(entry.adapterHash);
      adapters.push({ round: entry.round, hash: entry.adapterHash });
    }
    return adapters;
  }

  // ---- state -----------------------------------------------------------------------------------

  #state(): AppState {
    return {
      identity: this.#identity,
      settings: { ...this.#settings },
      federation: this.#membership && this.#summary(),
      model: this.#modelCheck(),
      data: this.#data,
      status: structuredClone(this.#status),
      history: this.#history.map((e) => ({ ...e })),
      logsDir: this.log.dir,
      gpuAvailable: this.#gpuAvailable,
      homeDir: this.home,
      cpuThreads: this.#cpuThreads,
    };
  }

  #summary(): FederationSummary | undefined {
    const m = this.#membership;
    const s = this.#federationSettings;
    if (!m || !s) return undefined;
    return summarize(s, m.url, fingerprint(m.coordinator), m);
  }

  #modelCheck(): ModelCheck | undefined {
    const model = this.#model;
    if (!model) return undefined;
    if (model.problem) return { dir: model.dir, ok: false, identity: model.identity, problem: model.problem };
    const base = this.#federationSettings?.baseModel;
    if (base && model.identity !== base.identity) {
      return {
        dir: model.dir,
        ok: false,
        identity: model.identity,
        problem: `This is not the federation's base model. The federation trains ${base.name} (identity ${shortHash(base.identity)}); this folder holds a model with identity ${shortHash(model.identity!)}. Choose the same checkpoint the other participants use.`,
      };
    }
    return { dir: model.dir, ok: true, identity: model.identity };
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

  /** Updates the live status; a change of state goes out at once, progress at most every 100 ms. */
  #setStatus(patch: Partial<LiveStatus>): void {
    const before = this.#status.state;
    this.#status = { ...this.#status, ...patch, device: this.#statusDevice() };
    if (this.#status.state !== before) {
      const why = this.#status.message ?? (this.#status.pausedBy && `by ${this.#status.pausedBy}`);
      this.log.info(`status ${this.#status.state}${why ? `: ${why}` : ''}`);
      clearTimeout(this.#statusTimer);
      this.#statusTimer = undefined;
      this.#emit({ type: 'status', status: structuredClone(this.#status) });
      return;
    }
    this.#statusTimer ??= setTimeout(() => {
      this.#statusTimer = undefined;
      this.#emit({ type: 'status', status: structuredClone(this.#status) });
    }, STATUS_THROTTLE_MS);
  }

  /** The provider training is asked to use (the setting, and whether there is a GPU). */
  #device(): 'cpu' | 'webgpu' {
    const wanted = this.#settings.device;
    if (wanted === 'cpu') return 'cpu';
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
    const model = this.#modelCheck();
    if (!model) return "choose the base model's folder first";
    if (!model.ok) return model.problem;
    if (!this.#data) return 'choose your data first';
    if (this.#data.report.usable === 0) return 'your data holds no usable training example; see the report';
    return undefined;
  }

  #refuseWhileTakingPart(what: string): void {
    if (this.#intent === 'running') {
      throw new AppError('APP_BUSY', `pause training before you ${what}`);
    }
  }

  #inviteText(invite: unknown): string {
    const value = text(invite, 'the invite', { min: 1, max: MAX_INVITE_LENGTH }).trim();
    readInvite(value); // a mistyped invite fails here, naming what is wrong, before any network
    return value;
  }

  // ---- model and data --------------------------------------------------------------------------

  async #checkModel(dir: string): Promise<void> {
    try {
      const result = await this.#worker.request({ kind: 'check-model', dir });
      this.#model = { dir, identity: result.identity };
      this.log.info(
        `model ${dir}: ${result.modelType}, ${result.layers} layers, identity ${result.identity}`,
      );
    } catch (error) {
      const message = (error as Error).message;
      this.#model = { dir, problem: `This folder cannot be used as a model: ${message}` };
      this.log.warn(`model ${dir} cannot be used: ${message}`);
    }
  }

  async #prepareData(files: string[]): Promise<void> {
    const model = this.#modelCheck();
    const settings = this.#federationSettings;
    const tokens =
      model?.ok && model.identity && settings
        ? {
            modelDir: model.dir,
            template: settings.training.template,
            cutoffLen: settings.training.cutoffLen,
            trainOnInputs: settings.training.trainOnInputs,
          }
        : undefined;
    const result = await this.#worker.request({ kind: 'prepare-data', files, tokens, previews: PREVIEWS });
    const previewProblem = tokens ? undefined : this.#previewProblem();
    this.#data = { files, report: result.report, previews: result.previews, previewProblem };
    const r = result.report;
    this.log.info(
      `data ${files.map((f) => basename(f)).join(', ')}: ${r.records} records, ${r.usable} usable, ${r.skipped.total} skipped${previewProblem ? ` (not tokenized yet: ${previewProblem})` : ''}`,
    );
  }

  /** Why the data cannot be tokenized yet (previews and token lengths need it), in words. */
  #previewProblem(): string {
    const model = this.#modelCheck();
    const why =
      "the examples are shown, and their lengths counted, in tokens of the base model with the federation's prompt template";
    if (!model) return `choose the base model first: ${why}`;
    if (!model.ok) return `choose a model folder that works and is the federation's base model first: ${why}`;
    return `join a federation first: ${why}`;
  }

  /** The model and data checks depend on the federation: run them again after joining or leaving. */
  async #recheckSelections(): Promise<void> {
    if (this.#data) await this.#prepareData(this.#data.files).catch(() => undefined);
  }

  // ---- federation ------------------------------------------------------------------------------

  async #loadMembership(): Promise<void> {
    const memberships = await listMemberships(this.home);
    // The app takes part in one federation; a home the CLI also used may hold more.
    const membership = memberships[0];
    this.#membership = membership;
    this.#federationSettings = membership && parseFederationSettings(membership.config);
    this.#history = membership ? await this.#readHistory(membership.federation) : [];
  }

  #historyPath(federation: string): string {
    return join(this.home, APP_DIR, `history-${federation}.json`);
  }

  /**
   * The rounds this computer took part in, as shown on the page. A file that cannot be parsed, or
   * that holds entries that are not round records, is set aside (the next round would otherwise
   * overwrite it) and the records that are sound are kept. One that cannot be read is left alone
   * (#readKeptFile), and read again before a round is saved.
   */
  async #readHistory(federation: string): Promise<RoundHistoryEntry[]> {
    const path = this.#historyPath(federation);
    const text = await this.#readKeptFile(path, 'rounds of this session are shown but not saved to it');
    if (text === undefined) return [];
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      await this.#setAsideDamaged(path, error, 'starting an empty round history');
      return [];
    }
    const entries = Array.isArray(value) ? value : [];
    const sound = entries.filter(
      (e): e is RoundHistoryEntry =>
        typeof e === 'object' && e !== null && Number.isInteger((e as RoundHistoryEntry).round),
    );
    if (Array.isArray(value) && sound.length === entries.length) return sound;
    const why = Array.isArray(value)
      ? `${entries.length - sound.length} of its ${entries.length} entries are not round records`
      : 'it is not a list of rounds';
    await this.#setAsideDamaged(path, new Error(why), `keeping the ${sound.length} sound rounds`);
    if (sound.length > 0) await writePrivateFile(path, JSON.stringify(sound, null, 2) + '\n');
    return sound;
  }

  /**
   * The text of a file the app keeps; undefined when there is none, or when it is there but cannot
   * be read: then it is remembered as unreadable (not to be written over) and the log says so once,
   * with what happens `meanwhile`.
   */
  async #readKeptFile(path: string, meanwhile: string): Promise<string | undefined> {
    try {
      const text = await readFile(path, 'utf8');
      this.#unreadable.delete(path);
      return text;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) {
        this.#unreadable.delete(path);
        return undefined;
      }
      if (!this.#unreadable.has(path)) {
        this.log.warn(
          `${path} could not be read (${(error as Error).message}); it is left as it is, ${meanwhile}`,
        );
      }
      this.#unreadable.add(path);
      return undefined;
    }
  }

  /**
   * Moves a damaged file the app keeps to `<name>.damaged` (`.damaged-2`, ... when an earlier one is
   * there: that one is kept too) for a look, and says in the log what is used `instead`.
   */
  async #setAsideDamaged(path: string, error: unknown, instead: string): Promise<void> {
    const why = error instanceof Error ? error.message : String(error);
    for (let n = 1; ; n++) {
      const aside = `${path}.damaged${n === 1 ? '' : `-${n}`}`;
      if (existsSync(aside)) continue;
      try {
        await rename(path, aside);
        this.log.warn(`${path} was damaged (${why}); kept as ${basename(aside)}, ${instead}`);
      } catch (renameError) {
        this.log.warn(
          `${path} was damaged (${why}) and could not be set aside (${(renameError as Error).message}); ${instead}`,
        );
      }
      return;
    }
  }

  async #recordRound(entry: RoundHistoryEntry): Promise<void> {
    const membership = this.#membership;
    if (!membership) return;
    const i = this.#history.findIndex((e) => e.round === entry.round);
    if (i >= 0) this.#history[i] = { ...this.#history[i], ...entry };
    else this.#history.push(entry);
    this.#history.sort((a, b) => a.round - b.round);
    const path = this.#historyPath(membership.federation);
    if (this.#unreadable.has(path)) {
      // Once it can be read again, the rounds it holds join this session's before it is saved.
      const stored = await this.#readHistory(membership.federation);
      if (this.#unreadable.has(path)) return;
      const known = new Set(this.#history.map((e) => e.round));
      this.#history.push(...stored.filter((e) => !known.has(e.round)));
      this.#history.sort((a, b) => a.round - b.round);
    }
    await ensurePrivateDir(join(this.home, APP_DIR));
    await writePrivateFile(path, JSON.stringify(this.#history, null, 2) + '\n');
  }

  // ---- the worker ------------------------------------------------------------------------------

  #runOptions(): RunOptions | undefined {
    const model = this.#modelCheck();
    if (!this.#membership || !model?.ok || !this.#data) return undefined;
    return {
      home: this.home,
      federationId: this.#membership.federation,
      modelDir: model.dir,
      dataFiles: this.#data.files,
      provider: this.#device(),
      threads: this.#settings.maxThreads,
    };
  }

  /** Brings the worker in line with the intent and the limits. */
  async #apply(): Promise<void> {
    if (this.#closed || this.#restartTimer) return;
    const wantRunning = this.#intent === 'running' && this.#held === undefined;
    if (wantRunning) {
      await this.#gpuProbe; // 'auto' needs to know whether there is a GPU
      const run = this.#runOptions();
      if (!run) {
        this.#intent = 'idle';
        this.#setStatus({ state: 'error', message: this.#readyProblem() ?? 'cannot start' });
        return;
      }
      const key = JSON.stringify(run);
      const current = this.#workerRun;
      if (current?.key === key && current.state === 'running') return;
      if (current?.key === key && current.state === 'paused') {
        current.state = 'running';
        this.#worker.resume();
      } else {
        const id = ++this.#runCounter;
        this.#workerRun = { id, key, state: 'running' };
        this.#worker.start(run, id);
      }
      if (
        this.#status.state === 'paused' ||
        this.#status.state === 'idle' ||
        this.#status.state === 'error' ||
        this.#status.state === 'finished'
      ) {
        this.#setStatus({
          state: 'connecting',
          message: 'starting',
          pausedBy: undefined,
          progress: undefined,
        });
      }
      this.#ensureLimitPolling();
      return;
    }
    if (this.#intent === 'idle') {
      void this.#stopWorker();
      return;
    }
    // Paused: by the person, or by a limit.
    if (this.#workerRun?.state === 'running') {
      this.#workerRun.state = 'paused';
      this.#worker.pause();
    }
    const pausedBy = this.#intent === 'paused' ? 'you' : this.#held!;
    // No message of its own: `pausedBy` says why, and the page words it.
    this.#setStatus({ state: 'paused', pausedBy, message: undefined, progress: undefined });
    this.#ensureLimitPolling();
  }

  /** Stops the participant; resolves once it has (its 'ended', a crash, or after 10 s). */
  #stopWorker(): Promise<void> {
    const run = this.#workerRun;
    this.#workerRun = undefined;
    let stopped = Promise.resolve();
    // A paused run has already let go (its participant stopped when it paused).
    if (run?.state === 'running') {
      stopped = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        this.#endedWaiters.set(run.id, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (run) this.#worker.stop();
    clearInterval(this.#limitTimer);
    this.#limitTimer = undefined;
    return stopped;
  }

  #ensureLimitPolling(): void {
    if (this.#limitTimer) return;
    this.#limitTimer = setInterval(() => this.#checkLimits(), this.#options.limitPollMs ?? 5000);
    this.#limitTimer.unref();
  }

  /** Re-reads power and idle state; `apply` (default) acts on a change. */
  #checkLimits(apply = true): void {
    let held: 'power' | 'idle' | undefined;
    try {
      if (this.#settings.onlyWhenPluggedIn && this.#monitor.onBattery()) held = 'power';
      else if (this.#settings.onlyWhenIdle && !this.#monitor.isIdle()) held = 'idle';
    } catch (error) {
      this.log.warn(`cannot read the power or idle state: ${(error as Error).message}`);
    }
    if (held === this.#held) return;
    this.#held = held;
    this.log.info(held ? `limit: holding training back (${held})` : 'limits: nothing holds training back');
    if (apply) this.#background(this.#apply().then(() => this.#emitState()));
  }

  #onWorkerMessage(message: FromWorker): void {
    if (this.#closed) return;
    if (message.type === 'ready') {
      this.log.info(`training worker started (pid ${message.pid})`);
      return;
    }
    if (message.type === 'round') {
      // True whichever run saw it.
      this.#background(
        this.#recordRound(message.entry).then(() => {
          this.log.info(`round ${message.entry.round}: ${describeRound(message.entry)}`);
          this.#emitState();
        }),
        'cannot save the round history',
      );
      return;
    }
    if (message.type === 'warning') {
      this.log.warn(message.message);
      return;
    }
    if (message.type === 'chat-model') {
      this.log.info(
        message.loaded ? `chat model loaded (${message.why})` : `chat model released: ${message.why}`,
      );
      return;
    }
    if (message.type === 'ended' && message.reason !== 'paused') {
      this.#endedWaiters.get(message.runId)?.();
      this.#endedWaiters.delete(message.runId);
    }
    const run = this.#workerRun;
    if (!('runId' in message) || message.runId !== run?.id) return; // about a run replaced since
    switch (message.type) {
      case 'status': {
        const s = message.status;
        if (run.state === 'paused') return; // the pause's own 'stopped'
        if (s.status === 'stopped') return; // 'ended' says why
        const keepProgress =
          (s.status === 'downloading' && this.#status.progress?.phase === 'download') ||
          (s.status === 'training' && this.#status.progress?.phase === 'training') ||
          (s.status === 'uploading' && this.#status.progress?.phase === 'upload');
        if (s.status === 'training' && s.round !== this.#lossRound) {
          this.#lossRound = s.round;
          this.#status.losses = [];
        }
        this.#setStatus({
          state: s.status,
          round: s.round ?? this.#status.round,
          message: s.message,
          pausedBy: undefined,
          progress: keepProgress ? this.#status.progress : undefined,
        });
        return;
      }
      case 'progress': {
        const p = message.progress;
        let losses = this.#status.losses;
        if (p.phase === 'training') {
          if (p.round !== this.#lossRound) {
            this.#lossRound = p.round;
            losses = [];
          }
          if (p.loss !== undefined) {
            losses = losses.slice(0, p.done - 1);
            while (losses.length < p.done - 1) losses.push(Number.NaN);
            losses.push(p.loss);
          }
        }
        this.#setStatus({
          round: p.round,
          losses,
          progress: {
            phase: p.phase,
            done: p.done,
            total: p.total,
            etaSeconds: p.etaSeconds,
            tokensPerSecond: p.tokensPerSecond,
          },
        });
        return;
      }
      case 'report':
        if (this.#data) this.#data = { ...this.#data, report: message.report as DatasetReport };
        return;
      case 'round-open':
        this.log.info(
          `round ${message.round} opened; this computer ${message.selected ? 'is selected' : 'is not selected'}`,
        );
        return;
      case 'ended':
        return this.#onEnded(message);
      case 'device': {
        const asked = (JSON.parse(run.key) as RunOptions).provider;
        this.#trainedOn = { asked, used: message.provider };
        if (asked !== message.provider) {
          this.log.warn(`training was asked to run on ${asked} but runs on ${message.provider}`);
        }
        this.#setStatus({});
        return;
      }
    }
  }

  #onEnded(message: Extract<FromWorker, { type: 'ended' }>): void {
    if (message.reason === 'paused') return;
    this.#workerRun = undefined;
    if (message.error) {
      this.#intent = 'idle';
      this.log.error(`training stopped: ${message.error.message} [${message.error.code}]`);
      this.#setStatus({ state: 'error', message: message.error.message, progress: undefined });
    } else if (message.reason === 'finished' || message.reason === 'max-rounds') {
      this.#intent = 'idle';
      this.#setStatus({
        state: 'finished',
        message:
          `all ${this.#federationSettings?.rounds ?? ''} rounds are done; thank you for taking part`.replace(
            'all  ',
            'all ',
          ),
        progress: undefined,
      });
    } else if (this.#intent === 'idle') {
      this.#setStatus({ state: 'idle', message: undefined, progress: undefined });
    } else if (this.#intent === 'running') {
      // Stopped without being asked (and without an error): start again.
      this.#background(this.#apply());
    }
    this.#background(
      this.#saveSettings().then(() => this.#emitState()),
      'cannot save the settings',
    );
  }

  #onWorkerCrash(exit: { code: number | null; signal?: string }): void {
    if (this.#closed) return;
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const now = Date.now();
    this.#crashes = [...this.#crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    this.log.error(`the training worker ${how}`);
    const wasRunning = this.#workerRun !== undefined;
    const before = { state: this.#status.state, message: this.#status.message };
    this.#workerRun = undefined;
    this.#settleEnded();
    if (this.#crashes.length > MAX_CRASHES) {
      this.#intent = 'idle';
      this.#setStatus({
        state: 'error',
        message: `the training worker keeps stopping (${this.#crashes.length} times in ${CRASH_WINDOW_MS / 60_000} minutes; last: it ${how}); see the logs`,
        progress: undefined,
      });
      this.#emitState();
      return;
    }
    const delay = Math.min(30_000, (this.#options.restartDelayMs ?? 1000) * 2 ** (this.#crashes.length - 1));
    this.#setStatus({
      state: 'crashed',
      message: `the training worker ${how}; ${wasRunning && this.#intent !== 'idle' ? 'restarting it and resuming where it stopped' : 'it starts again when needed'}`,
      progress: undefined,
    });
    this.#emitState();
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.log.info('restarting the training worker');
      // Nothing was running (a chat or a check crashed): back to how things were.
      if (this.#intent === 'idle') this.#setStatus(before.state === 'crashed' ? { state: 'idle' } : before);
      this.#background(this.#apply().then(() => this.#emitState()));
    }, delay);
  }

  /** Work started from an event, not from a call: its failure is logged, and close() waits for it. */
  #background(work: Promise<void>, failure = 'something went wrong'): void {
    const tracked = work.catch((error: unknown) => this.log.error(`${failure}: ${(error as Error).message}`));
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }

  /** A dead worker ends no run: release whoever waits. */
  #settleEnded(): void {
    for (const resolve of this.#endedWaiters.values()) resolve();
    this.#endedWaiters.clear();
  }

  // ---- settings file ---------------------------------------------------------------------------

  #settingsPath(): string {
    return join(this.home, APP_DIR, SETTINGS_FILE);
  }

  async #readSettingsFile(): Promise<SettingsFile> {
    const path = this.#settingsPath();
    const raw = await this.#readKeptFile(
      path,
      'the default settings are used and changes are not saved until the app starts with it readable',
    );
    if (raw === undefined) return { version: 1, settings: { ...DEFAULT_SETTINGS } };
    try {
      const value = JSON.parse(raw) as Partial<SettingsFile>;
      // Key by key: one value this machine cannot take (more threads than it has, after the folder
      // moved to another computer) falls back to its default, not the whole file.
      const settings = { ...DEFAULT_SETTINGS };
      for (const [key, v] of Object.entries(value.settings ?? {})) {
        try {
          Object.assign(settings, settingsPatch({ [key]: v }, this.#cpuThreads));
        } catch (error) {
          this.log.warn(`${path}: ${(error as Error).message}; using the default`);
        }
      }
      const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
      return {
        version: 1,
        settings,
        modelDir: typeof value.modelDir === 'string' ? value.modelDir : undefined,
        dataFiles: strings(value.dataFiles) ? value.dataFiles : undefined,
        takingPart: value.takingPart === true,
      };
    } catch (error) {
      // Settings are not secrets and hold nothing that cannot be chosen again: keep the damaged
      // file for a look, start from the defaults, and say so in the log.
      await this.#setAsideDamaged(path, error, 'using the default settings');
      return { version: 1, settings: { ...DEFAULT_SETTINGS } };
    }
  }

  async #saveSettings(): Promise<void> {
    // Settings the person chose before stay in the file that could not be read, not the defaults.
    if (this.#unreadable.has(this.#settingsPath())) return;
    const file: SettingsFile = {
      version: 1,
      settings: this.#settings,
      modelDir: this.#model?.dir,
      dataFiles: this.#data?.files,
      takingPart: this.#intent === 'running',
    };
    await ensurePrivateDir(join(this.home, APP_DIR));
    await writePrivateFile(this.#settingsPath(), JSON.stringify(file, null, 2) + '\n');
  }
}

/** A chat reply's source in words, for the page and the log. */
export function describeChatSource(source: ChatSource): string {
  const { adapter, newestKnown, problem } = source;
  const name = (a: KnownAdapter) => `the global adapter after round ${a.round} (${shortHash(a.hash)})`;
  if (!newestKnown) {
    return 'the base model alone, no adapter yet: no round of the federation has closed since this computer joined';
  }
  if (adapter && source.newest) return `the federation's newest global adapter: ${name(adapter)}`;
  const why = problem ? `: ${problem}` : '';
  if (adapter) {
    return `an older global adapter, ${name(adapter)}: the newest, after round ${newestKnown.round}, cannot be used on this computer${why}`;
  }
  return `the base model alone, no adapter: ${name(newestKnown)} cannot be used on this computer${why}`;
}
