// The one narrow API between the desktop app's untrusted renderer and the participant's core.
// Electron's preload exposes it as `window.fedit` through contextBridge; the development shell
// (used by the browser tests) exposes the same object over a local WebSocket. The renderer knows
// nothing else: no Node, no file system, no network but this.
//
// Everything crossing it is plain, structured-clonable data (no classes, no functions but the
// event subscription), and every argument is validated on the backend side (the renderer is
// treated as untrusted).

import type { DatasetReport, PreviewSegment } from '../core/data/index.ts';
import type { ParticipantEvents, ParticipantStatus, RoundHistoryEntry } from '../core/federation/index.ts';

/** The participant's settings (stored in the OS user-data folder). */
export interface AppSettings {
  /** Where to compute: 'auto' = whichever of WebGPU and the CPU trains faster here, measured on a few real steps. */
  device: 'auto' | 'cpu' | 'webgpu';
  /** CPU threads for training (0 = all cores). */
  maxThreads: number;
  /** Only train while on mains power (laptops). */
  onlyWhenPluggedIn: boolean;
  /** Only train while the computer is idle. */
  onlyWhenIdle: boolean;
  displayName: string;
}

export interface FederationSummary {
  id: string;
  name: string;
  coordinatorUrl: string;
  /** Short form of the coordinator's key fingerprint, for people to compare. */
  coordinatorFingerprint: string;
  /** `repo` and `revision`: where it can be downloaded (a Hugging Face repository), if the operator said. */
  baseModel: { name: string; identity: string; repo?: string; revision?: string };
  lora: { rank: number; alpha: number; dropout: number; targets: string[] };
  training: { localSteps: number; batchSize: number; lr: number; cutoffLen: number; template: string };
  rounds: number;
  /** Updates a round needs to count (it is dropped with fewer), and how long a round stays open, s. */
  round: { minUpdates?: number; deadlineSeconds?: number };
  /** Privacy-relevant settings, in words, for the person to read before joining. */
  privacy: string[];
  /** How the federation combines updates and trains (its rule and learning settings), in words. */
  learning: string[];
  /** This computer's membership, once it has joined (absent in an invite's summary before joining). */
  joinedAs?: { participantId: string; displayName: string; joinedAt: number };
  /** "your 3 of 3 updates are in the signed log (head of size N, root …)", once there are receipts. */
  signedLog?: string;
}

export interface ModelCheck {
  dir: string;
  ok: boolean;
  identity?: string;
  /** Why it cannot be used (not a model folder, another base model than the federation's, ...). */
  problem?: string;
}

/** The base model's download from the Hub (downloadModel), while it runs and after. */
export interface ModelDownload {
  /** owner/name@revision. */
  source: string;
  /** The model folder it goes to. */
  dir: string;
  state: 'downloading' | 'failed' | 'done';
  /** Bytes on disk and in all (total 0 until the repository is listed). */
  done: number;
  total: number;
  /** The file arriving now. */
  file?: string;
  /** Why it failed, in words (state 'failed'); a later download continues what arrived. */
  problem?: string;
}

export interface DataSelection {
  files: string[];
  report: DatasetReport;
  /**
   * A few training examples exactly as the trainer will see them, each as runs of text that are
   * trained on (what the model learns to write) or only read.
   */
  previews: PreviewSegment[][];
  /**
   * Why there are no previews and no token lengths yet, in words (the data is checked, but cannot
   * be tokenized until a matching model is chosen and a federation joined); absent once it is.
   */
  previewProblem?: string;
}

export type TrainingState =
  | ParticipantStatus
  | 'idle' // not started
  | 'paused' // the participant paused, or a limit (power, idle) holds training back
  | 'crashed' // the training worker died; it is restarted
  | 'finished'; // the federation's last round closed

export interface LiveStatus {
  state: TrainingState;
  message?: string;
  round?: number;
  /** Where training runs now. */
  device: 'cpu' | 'webgpu';
  progress?: {
    phase: 'download' | 'training' | 'upload';
    done: number;
    total: number;
    etaSeconds?: number;
    tokensPerSecond?: number;
  };
  /** Loss per local step of the current round, for the chart. */
  losses: number[];
  /** The round `losses` belong to. */
  lossesRound?: number;
  /** Why training is paused (state 'paused'): the person, or a limit from the settings. */
  pausedBy?: 'you' | 'power' | 'idle';
  /** When the round `round` closes (its deadline, ms since 1970), from the coordinator's 'round-open'. */
  roundClosesAt?: number;
}

/** What taking part in a federation costs on this computer (./cost.ts), measured before joining. */
export interface CostEstimate {
  /** Where the steps ran, how many were timed, and their median. */
  device: 'cpu' | 'webgpu';
  measuredSteps: number;
  secondsPerStep: number;
  /** The federation's steps per round, and what they take here. */
  localSteps: number;
  minutesPerRound: number;
  /** One update per round trained in, and the disk the federation's files take (the model aside). */
  megabytesSentPerRound: number;
  diskMegabytes: number;
}

/** What "Save adapter…" wrote. */
export interface SavedAdapter {
  /** The PEFT adapter folder (adapter_config.json, adapter_model.safetensors, README.md). */
  folder: string;
  /** The round whose global adapter it is, and its content hash. */
  round: number;
  adapterHash: string;
  /** Whether it is the federation's final adapter (the federation has ended). */
  final: boolean;
  /** The files written there, by name. */
  files: string[];
}

/** The federation this computer is in has ended (known from its final adapter, kept here). */
export interface FederationEnded {
  rounds: number;
  adapterHash: string;
  /** The final adapter's file in this computer's adapter cache. */
  adapterPath: string;
}

export interface AppState {
  /** The participant's identity fingerprint; absent before first run. */
  identity?: string;
  /**
   * How identity.json is kept: sealed by this computer's keychain (Electron safeStorage), or, where
   * none is available, only by owner-only file permissions (the page says so). Absent before the
   * identity exists.
   */
  identityProtection?: 'os-keychain' | 'file-permissions';
  settings: AppSettings;
  federation?: FederationSummary;
  /** Set once the federation has ended and its final adapter is kept on this computer. */
  ended?: FederationEnded;
  model?: ModelCheck;
  /** The base model's download, once one was asked for. */
  modelDownload?: ModelDownload;
  data?: DataSelection;
  status: LiveStatus;
  history: RoundHistoryEntry[];
  /** The folder of the app's logs (for a "show logs" button). */
  logsDir: string;
  /** Is a GPU (WebGPU) available on this machine? */
  gpuAvailable: boolean;
  /** WebGPU starts here on a software rasteriser (lavapipe, SwiftShader...): it runs on the CPU. */
  gpuSoftware?: boolean;
  /** What "Automatic" chose from a few measured training steps, and why (absent: not measured yet). */
  deviceChoice?: { device: 'cpu' | 'webgpu'; why: string; measured?: { cpu: number; webgpu?: number } };
  /** The app's folder in the OS user-data folder: identity, settings, memberships, logs. */
  homeDir: string;
  /** CPU threads this machine has (the upper bound of settings.maxThreads). */
  cpuThreads: number;
}

/**
 * One event of the participant (core/federation), exactly as it emitted it: the event's name and
 * its one argument. The worker forwards these unchanged, the backend passes those of the current
 * run on to the page unchanged, and both fold them into the LiveStatus with reduceLiveStatus
 * (./live-status.ts): one vocabulary from the trainer to the page.
 */
export type ParticipantEvent = {
  [K in keyof ParticipantEvents]: { type: K; data: ParticipantEvents[K][0] };
}[keyof ParticipantEvents];

export type AppEvent =
  /** Everything, after a change the backend made (a choice, a round recorded, the worker's state). */
  | { type: 'state'; state: AppState }
  /** The live status after a change of the backend's own (paused, crashed, finished, ...). */
  | { type: 'status'; status: LiveStatus }
  /** An event of the participant taking part now: fold it into the status with reduceLiveStatus. */
  | { type: 'participant'; event: ParticipantEvent }
  /**
   * A piece of a chat reply: append `text` to what came before with the same id. The last event
   * has `done` and says what the reply was generated with: in words in `adapter`, as data in
   * `source` (or `error`).
   */
  | {
      type: 'chat';
      id: string;
      text: string;
      done: boolean;
      error?: string;
      adapter?: string;
      source?: ChatSource;
    };

/** What a chat reply was generated with. */
export interface ChatSource {
  /** The federation's global adapter after round `round`; absent: the base model alone. */
  adapter?: { round: number; hash: string };
  /** Whether that is the newest global adapter this computer knows of (false: an older one, or none). */
  newest: boolean;
  /** Why the newest is not used: it could not be fetched (the coordinator is unreachable, ...). */
  problem?: string;
  /** The newest global adapter this computer knows of (absent: the coordinator has shown no closed round yet). */
  newestKnown?: { round: number; hash: string };
}

export interface FeditAppApi {
  getState(): Promise<AppState>;
  /** First run: create the identity (a key pair stored with owner-only permissions). */
  createIdentity(): Promise<AppState>;
  updateSettings(patch: Partial<AppSettings>): Promise<AppState>;
  /** Read an invite's federation settings without joining (shown before the person agrees). */
  inspectInvite(invite: string): Promise<FederationSummary>;
  joinFederation(invite: string): Promise<AppState>;
  /**
   * Before joining: times a few training steps of the invite's federation (read with inspectInvite)
   * on the chosen model and data, and answers what a round costs here.
   */
  estimateCost(invite: string): Promise<CostEstimate>;
  leaveFederation(): Promise<AppState>;
  /**
   * After joining: asks the coordinator to show this participant under `displayName` (a signed
   * rename it records in its log); the membership keeps the new name.
   */
  renameParticipant(displayName: string): Promise<AppState>;
  /** Paths come from the OS file picker in the app, or are typed in the development shell. */
  chooseModel(dir?: string): Promise<AppState>;
  /**
   * Downloads the federation's base model from the repository its operator named, checks it is
   * the federation's (its identity) and chooses it; progress arrives as 'state' events.
   */
  downloadModel(): Promise<AppState>;
  chooseData(files?: string[]): Promise<AppState>;
  start(): Promise<AppState>;
  pause(): Promise<AppState>;
  resume(): Promise<AppState>;
  /**
   * Writes the federation's newest global adapter (its final one once it has ended) as a PEFT
   * adapter folder with its model card into `folder` (new or empty); without a folder the app
   * opens the system's folder picker, and a cancelled picker answers undefined.
   */
  saveAdapter(folder?: string): Promise<SavedAdapter | undefined>;
  /** Streams the reply as 'chat' events with this id; generates with the current global adapter. */
  chat(id: string, prompt: string): Promise<void>;
  openLogs(): Promise<void>;
  /** The end of the app's log (the last 64 KiB), for showing it inside the app. */
  readLogs(): Promise<string>;
  /** Subscribes to events; returns an unsubscribe function. */
  onEvent(listener: (event: AppEvent) => void): () => void;
}

export const API_METHODS = [
  'getState',
  'createIdentity',
  'updateSettings',
  'inspectInvite',
  'joinFederation',
  'estimateCost',
  'leaveFederation',
  'renameParticipant',
  'chooseModel',
  'downloadModel',
  'chooseData',
  'start',
  'pause',
  'resume',
  'saveAdapter',
  'chat',
  'openLogs',
  'readLogs',
] as const satisfies readonly Exclude<keyof FeditAppApi, 'onEvent'>[];
export type ApiMethod = (typeof API_METHODS)[number];
