// The desktop app's backend: everything behind `window.fedit` (./api.ts), on the participant's core.
// Electron's main process hosts it behind the preload; the development shell hosts it behind a
// local WebSocket. Either way the renderer is untrusted: both call it through ./dispatch.ts, which
// checks every argument against its declaration (./validate.ts) before a method here runs.
//
// It is a composition of parts, each in its own file:
//
//   ./settings-file.ts     app/settings.json: AppSettings, the chosen model and data, takingPart
//   ./history-file.ts      app/history-<federation>.json: the rounds this computer saw
//   ./kept-files.ts        what happens to either when it is damaged or cannot be read
//   ./selections.ts        the model folder and data files, as the worker checked them
//   ./model-download.ts    the base model downloaded from the repository the federation names
//   ./worker-supervisor.ts the training worker: start, pause, stop, the power and idle limits, and
//                          a restart when it dies (it resumes from what the participant keeps)
//   ./taking-part.ts       the supervisor's host: run options, Automatic's device choice, the
//                          federation's end, the participant's events into the round history
//   ./live-status.ts       the live status: a pure fold of the participant's events and the
//                          supervisor's, the same one the page runs on the events it receives
//   ./device.ts, ./cost.ts where training runs (Automatic: measured steps) and what a round costs
//   ./membership.ts        the federation, its end (./federation-end.ts), Save adapter, renaming
//   ./app-identity.ts      the identity key, sealed by the OS keychain where one protects it
// In its home (the OS user-data folder) it also keeps the core's identity.json, federations/,
// adapters/, rounds/ (core/federation/store.ts), chat-adapters/ and logs/app.log (./app-log.ts).

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
// The federation's files directly, not its index: the index also exports the Participant, which
// loads the compute engine (onnxruntime), and that belongs in the training worker only.
import { ensurePrivateDir } from '../core/federation/store.ts';
import type {
  AppEvent,
  AppSettings,
  AppState,
  CostEstimate,
  FederationSummary,
  FeditAppApi,
  SavedAdapter,
} from './api.ts';
import { AppIdentity } from './app-identity.ts';
import { AppLog } from './app-log.ts';
import { BackgroundWork } from './background.ts';
import { replyInWorker } from './chat-reply.ts';
import { measureCost } from './cost.ts';
import { TrainingDevice, probeWebGpu, type ProbeResult } from './device.ts';
import { endedSentence } from './federation-end.ts';
import { HistoryFile } from './history-file.ts';
import { KeptFiles } from './kept-files.ts';
import { ModelDownloads } from './model-download.ts';
import { FederationMembership } from './membership.ts';
import { PageFeed } from './page-feed.ts';
import { Selections } from './selections.ts';
import { DEFAULT_SETTINGS, SettingsFile } from './settings-file.ts';
import { HEADLESS_MONITOR, type SystemMonitor } from './system-monitor.ts';
import { AppError, existingFiles, existingPath } from './validate.ts';
import { readyProblem, supervisorHost, withIdentity, type TakingPartParts } from './taking-part.ts';
import { WorkerSupervisor, type SupervisorOptions } from './worker-supervisor.ts';
import type { WorkerLink } from './worker-protocol.ts';

export const APP_DIR = 'app';
export const LOGS_DIR = 'logs';

export interface BackendOptions extends Pick<SupervisorOptions, 'limitPollMs' | 'restartDelayMs'> {
  /** The app's folder: the OS user-data folder (Electron's app.getPath('userData')). */
  home: string;
  worker: WorkerLink;
  /** Power and idle state for the training limits (default: HEADLESS_MONITOR). */
  monitor?: SystemMonitor;
  /** Whether WebGPU can run here, and on a software adapter or not (default: probeWebGpu, once). */
  probeGpu?: () => Promise<boolean | ProbeResult>;
  /** Opens a folder in the system's file manager (Electron: shell.openPath). */
  openPath?: (path: string) => Promise<void>;
  /** CPU threads of this machine (default os.availableParallelism()). */
  cpuThreads?: number;
  /** Where the base model is downloaded from (default: $HF_ENDPOINT, else the Hugging Face Hub). */
  hubUrl?: string;
}

export class AppBackend implements FeditAppApi {
  readonly home: string;
  readonly log: AppLog;
  readonly #options: BackendOptions;
  readonly #worker: WorkerLink;
  /** CPU threads of this machine: the bound of settings.maxThreads. */
  readonly cpuThreads: number;
  readonly #page: PageFeed;
  readonly #background: BackgroundWork;
  readonly #settingsFile: SettingsFile;
  readonly #selections: Selections;
  readonly #downloads: ModelDownloads;
  readonly #supervisor: WorkerSupervisor;

  #settings: AppSettings = { ...DEFAULT_SETTINGS };
  readonly #identity: AppIdentity;
  readonly #federation: FederationMembership;
  readonly #device = new TrainingDevice();
  #gpuProbe: Promise<void> = Promise.resolve();
  #closed = false;
  /** What taking part (./taking-part.ts) reads of this backend, and asks it to do. */
  readonly #parts: TakingPartParts;

  private constructor(options: BackendOptions) {
    this.#options = options;
    this.home = options.home;
    this.#worker = options.worker;
    this.cpuThreads = options.cpuThreads ?? availableParallelism();
    this.log = new AppLog(join(this.home, LOGS_DIR));
    this.#background = new BackgroundWork(this.log);
    this.#page = new PageFeed(this.log);
    const files = new KeptFiles(this.log);
    this.#identity = new AppIdentity(this.home, this.log);
    const appDir = join(this.home, APP_DIR);
    this.#settingsFile = new SettingsFile(join(appDir, 'settings.json'), {
      files,
      log: this.log,
      cpuThreads: this.cpuThreads,
    });
    const history = new HistoryFile(appDir, files);
    this.#federation = new FederationMembership(this.home, this.log, history, files, appDir);
    this.#selections = new Selections(this.#worker, this.log);
    const onChange = () => void this.#changed();
    this.#parts = {
      home: this.home,
      log: this.log,
      worker: this.#worker,
      page: this.#page,
      background: this.#background,
      federation: this.#federation,
      selections: this.#selections,
      device: this.#device,
      settings: () => this.#settings,
      gpuProbe: () => this.#gpuProbe,
      identity: () => this.#identity.fingerprint,
      workerIdentity: () => this.#identity.forWorker(),
      changed: onChange,
      saveSettings: () => this.#saveSettings(),
      showDevice: () => this.#showDevice(),
    };
    this.#downloads = new ModelDownloads({ ...options, log: this.log, onChange });
    this.#supervisor = new WorkerSupervisor(supervisorHost(this.#parts), {
      ...options,
      monitor: options.monitor ?? HEADLESS_MONITOR,
      log: this.log,
      background: this.#background,
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
    await this.#identity.load();
    await this.#federation.load();
    const probe = this.#options.probeGpu ?? (() => probeWebGpu());
    this.#gpuProbe = this.#device.probe(probe, this.log).then(() => {
      this.#showDevice();
      this.#changed();
    });
    this.#showDevice();
    await this.#selections.restore(stored, this.#federation.settings);
    this.#showEnded();
    if (stored.takingPart && readyProblem(this.#parts) === undefined) {
      this.log.info('taking part again, as when the app was last closed');
      this.#background.run(this.#supervisor.start());
    }
  }

  // ---- the API ---------------------------------------------------------------------------------

  async getState(): Promise<AppState> {
    return this.#state();
  }

  onEvent(listener: (event: AppEvent) => void): () => void {
    return this.#page.on(listener);
  }

  async createIdentity(): Promise<AppState> {
    await this.#identity.create();
    return this.#changed();
  }

  async updateSettings(patch: Partial<AppSettings>): Promise<AppState> {
    const before = this.#settings;
    this.#settings = { ...before, ...patch };
    await this.#saveSettings();
    this.log.info(`settings changed: ${JSON.stringify(patch)}`);
    this.#showDevice();
    const restart =
      before.device !== this.#settings.device || before.maxThreads !== this.#settings.maxThreads;
    if (restart && this.#supervisor.intent === 'running') {
      this.log.info('restarting training with the new device and thread settings');
    }
    await this.#supervisor.refresh();
    return this.#changed();
  }

  async inspectInvite(invite: string): Promise<FederationSummary> {
    return this.#federation.inspect(invite);
  }

  async joinFederation(invite: string): Promise<AppState> {
    const { displayName } = this.#settings;
    await this.#federation.join(invite, { identity: this.#identity.fingerprint, displayName });
    await this.#selections.recheckData(this.#federation.settings);
    return this.#changed();
  }

  async estimateCost(invite: string): Promise<CostEstimate> {
    const settings = this.#federation.inspectedSettings(invite);
    const chosen = { model: this.#selections.model(settings), data: this.#selections.data };
    const on = { provider: this.#device.asked(this.#settings.device), threads: this.#settings.maxThreads };
    return measureCost(settings, chosen, on, (job) => this.#worker.request(job));
  }

  async leaveFederation(): Promise<AppState> {
    if (!this.#federation.current)
      throw new AppError('APP_NOT_READY', 'this computer is not in a federation');
    await this.#supervisor.stop();
    await this.#federation.leave();
    this.#page.app({ type: 'app:left' });
    await this.#saveSettings();
    await this.#selections.recheckData(undefined);
    return this.#changed();
  }

  async renameParticipant(displayName: string): Promise<AppState> {
    await this.#federation.rename(displayName);
    return this.#changed();
  }

  async chooseModel(dir?: string): Promise<AppState> {
    if (dir === undefined) throw new AppError('APP_ARGUMENT', 'choose a model folder');
    this.#refuseWhileTakingPart('change the model');
    const path = await existingPath(dir, 'the model folder', 'dir');
    await this.#selections.checkModel(path);
    await this.#saveSettings();
    await this.#selections.recheckData(this.#federation.settings);
    return this.#changed();
  }

  async downloadModel(): Promise<AppState> {
    this.#refuseWhileTakingPart('change the model');
    const dir = await this.#downloads.download(this.#federation.settings);
    return this.chooseModel(dir);
  }

  async chooseData(files?: string[]): Promise<AppState> {
    if (files === undefined) throw new AppError('APP_ARGUMENT', 'choose one or more data files');
    this.#refuseWhileTakingPart('change the data');
    const paths = await existingFiles(files, 'the data files');
    await this.#selections.prepareData(paths, this.#federation.settings);
    await this.#saveSettings();
    return this.#changed();
  }

  async start(): Promise<AppState> {
    const problem = readyProblem(this.#parts);
    if (problem) throw new AppError('APP_NOT_READY', problem);
    if (this.#showEnded()) return this.#changed(); // nothing to take part in, nothing to connect to
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

  async saveAdapter(folder?: string): Promise<SavedAdapter | undefined> {
    if (folder === undefined) throw new AppError('APP_ARGUMENT', 'choose a folder for the adapter');
    return this.#federation.saveAdapter(folder);
  }

  async chat(id: string, prompt: string): Promise<void> {
    const model = this.#selections.model(undefined);
    if (!model?.identity) throw new AppError('APP_NOT_READY', 'choose a working model folder first');
    const request = {
      chatId: id,
      prompt,
      home: this.home,
      federationId: this.#federation.current?.federation,
      modelDir: model.dir,
      provider: this.#device.asked(this.#settings.device),
      threads: this.#settings.maxThreads,
      ...withIdentity(this.#identity.forWorker()),
    };
    await replyInWorker(
      this.#worker,
      request,
      this.#federation.history.entries,
      (e) => this.#page.emit(e),
      this.log,
    );
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
    this.#page.close();
  }

  // ---- taking part -----------------------------------------------------------------------------

  async #takePart(): Promise<void> {
    const started = this.#supervisor.start();
    await this.#saveSettings();
    await started;
  }

  // ---- state, and the settings file ------------------------------------------------------------

  #state(): AppState {
    return {
      identity: this.#identity.fingerprint,
      ...(this.#identity.protection && { identityProtection: this.#identity.protection }),
      settings: { ...this.#settings },
      federation: this.#federation.summary(),
      ended: this.#federation.end.current,
      model: this.#selections.model(this.#federation.settings),
      modelDownload: this.#downloads.state,
      data: this.#selections.data,
      status: structuredClone(this.#page.status),
      history: this.#federation.history.entries,
      logsDir: this.log.dir,
      gpuAvailable: this.#device.gpuAvailable,
      gpuSoftware: this.#device.gpuSoftware,
      deviceChoice: this.#device.choice,
      homeDir: this.home,
      cpuThreads: this.cpuThreads,
    };
  }

  /** The state now, also sent to the page (unless the app is closing). */
  #changed(): AppState {
    const state = this.#state();
    if (!this.#closed) this.#page.emit({ type: 'state', state });
    return state;
  }

  #refuseWhileTakingPart(what: string): void {
    if (this.#supervisor.intent === 'running')
      throw new AppError('APP_BUSY', `pause training before you ${what}`);
  }

  /** When the federation has ended: says so, with where its adapter is, instead of taking part. */
  #showEnded(): boolean {
    const end = this.#federation.end.current;
    if (end) this.#page.app({ type: 'app:stopped', state: 'finished', message: endedSentence(end) });
    return end !== undefined;
  }

  /** Where training runs, as the status shows it, after the setting or the GPU probe changed. */
  #showDevice(): void {
    this.#page.app({ type: 'app:device', device: this.#device.shown(this.#settings.device) });
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
