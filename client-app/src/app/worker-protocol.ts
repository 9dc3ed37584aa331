// The messages between the app's backend and its training worker, and the two interfaces that
// carry them.
//
// The worker runs everything that loads onnxruntime or chews through a model or a dataset:
// taking part in rounds (the core's Participant), checking a model folder, validating data and
// rendering previews, chat generation. In the desktop app it is an Electron utilityProcess, so a
// native crash (onnxruntime, a GPU driver) kills the worker and not the window; the backend sees
// the exit, reports 'crashed' and starts a new worker, which resumes from what the participant
// keeps on disk (training checkpoints, the signed pending upload). The development shell and the
// tests run the same worker in-process or as a Node child process (./worker-link.ts).
//
// Every message is plain, structured-clonable and JSON-safe data, so any postMessage-like channel
// carries it (utilityProcess's parentPort, child_process IPC, an in-memory pair). Unlike the page's
// arguments (./validate.ts) these are typed here and not checked on arrival: both ends are the
// app's own code, built together, and the worker is started by the backend, so a message of
// another shape is a bug to fix, not input to refuse.

import type { LoraConfig } from '@fedit/kernels';
import type { SerializedIdentity } from '@fedit/shared';
import type { DatasetReport, PreviewSegment } from '../core/data/index.ts';
import type { FinalAdapter, ParticipantEvents, PromptTemplateName } from '../core/federation/index.ts';
import type { ParticipantEvent } from './api.ts';

/** What the participant runs with: the options of the core's Participant the app sets. */
export interface RunOptions {
  /** The fedit home folder (the app's user-data folder). */
  home: string;
  federationId: string;
  modelDir: string;
  dataFiles: string[];
  provider: 'cpu' | 'webgpu';
  /** CPU threads (0: ONNX Runtime's default, all cores). */
  threads: number;
  /**
   * The participant's identity, opened, when identity.json is sealed by the OS keychain: the
   * worker (a utilityProcess) cannot open it itself (core/federation/identity-file.ts).
   */
  identity?: SerializedIdentity;
}

/** A global adapter of the federation: the one round `round` closed with. */
export interface KnownAdapter {
  round: number;
  hash: string;
}

/** Work the backend asks of the worker that has an answer. */
export type Job =
  /**
   * Loads a model folder (converting its weights once, under `cacheDir` when given) and answers
   * its identity.
   */
  | { kind: 'check-model'; dir: string; cacheDir?: string }
  /** Validates data files; with `tokens`, tokenizes them as the trainer will and renders previews. */
  | {
      kind: 'prepare-data';
      files: string[];
      tokens?: { modelDir: string; template: PromptTemplateName; cutoffLen: number; trainOnInputs: boolean };
      previews: number;
    }
  /** Times a few real training steps of the federation's settings on one provider. */
  | {
      kind: 'measure-device';
      modelDir: string;
      dataFiles: string[];
      lora: LoraConfig;
      training: {
        template: PromptTemplateName;
        cutoffLen: number;
        trainOnInputs: boolean;
        batchSize: number;
      };
      provider: 'cpu' | 'webgpu';
      threads: number;
      /** Steps to run; all but the first are timed. */
      steps: number;
    }
  /** Generates a reply with the base model and the newest global adapter it can have (./chat-adapter.ts). */
  | {
      kind: 'chat';
      chatId: string;
      prompt: string;
      home: string;
      federationId?: string;
      modelDir: string;
      /** The federation's global adapters this computer knows of, newest first. */
      adapters: KnownAdapter[];
      provider: 'cpu' | 'webgpu';
      threads: number;
      maxNewTokens: number;
      /** As RunOptions.identity. */
      identity?: SerializedIdentity;
    };

/** A few training steps timed on one provider (./device-measure.ts). */
export interface DeviceMeasurement {
  /** The provider asked for, and the one the trainer started on (a GPU that fails falls back). */
  provider: 'cpu' | 'webgpu';
  startedOn: 'cpu' | 'webgpu';
  /** Steps timed (the first, which compiles, is not), and their median duration. */
  steps: number;
  secondsPerStep: number;
  /** The LoRA adapter's size as float32, bytes: what one update sends. */
  adapterBytes: number;
}

export interface JobResults {
  'check-model': { identity: string; modelType: string; layers: number; hiddenSize: number };
  'prepare-data': { report: DatasetReport; previews: PreviewSegment[][] };
  /** `adapter`: the global adapter used (none: the base model alone); `problem`: why not the newest. */
  chat: { text: string; adapter?: KnownAdapter; problem?: string };
  'measure-device': DeviceMeasurement;
}

export type ToWorker =
  /** Take part with `run`; every message about it carries `runId`. */
  | { type: 'start'; run: RunOptions; runId: number }
  /** Stop taking part but remember `run` (training keeps its checkpoint, uploads stay on disk). */
  | { type: 'pause' }
  | { type: 'resume' }
  /** Stop taking part and forget `run`. */
  | { type: 'stop' }
  | { type: 'job'; id: number; job: Job }
  /** Stop taking part (saving training state), then end the worker. */
  | { type: 'quit' };

export interface WorkerError {
  code: string;
  message: string;
}

/**
 * Every event the participant emits, forwarded as it is (the record makes the compiler ask for a
 * decision when the participant gains one).
 */
export const PARTICIPANT_EVENT_NAMES = Object.keys({
  status: true,
  report: true,
  progress: true,
  'round-open': true,
  round: true,
  connection: true,
  warning: true,
  settings: true,
  device: true,
} satisfies Record<keyof ParticipantEvents, true>) as (keyof ParticipantEvents)[];

export type FromWorker =
  | { type: 'ready'; pid: number }
  /** An event of run `runId`'s participant, unchanged. */
  | { type: 'participant'; runId: number; event: ParticipantEvent }
  /** Something the worker itself worked around. */
  | { type: 'warning'; message: string }
  /** The participant stopped: the federation is over, it was paused or stopped, or it failed. */
  | {
      type: 'ended';
      runId: number;
      reason: 'finished' | 'max-rounds' | 'stopped' | 'paused';
      error?: WorkerError;
      /** 'finished': the federation's final adapter, fetched into the adapter cache. */
      finalAdapter?: FinalAdapter;
    }
  /** The chat model was loaded, or released (training started, unused for a while), and why. */
  | { type: 'chat-model'; loaded: boolean; why: string }
  /** A piece of a chat reply (job `id`). */
  | { type: 'chat-text'; id: number; text: string }
  | { type: 'job-done'; id: number; result: JobResults[Job['kind']] }
  | { type: 'job-failed'; id: number; error: WorkerError };

/** The worker's end of the channel: a postMessage-like port. */
export interface WorkerPort {
  postMessage(message: FromWorker): void;
  onMessage(listener: (message: ToWorker) => void): void;
  /** Ends the worker ('quit'); a process exits. */
  close(): void;
}

/**
 * The backend's handle on one worker process (or thread, or in-process host): what an Electron
 * utilityProcess, a child_process fork or an in-memory pair each provide in a few lines.
 */
export interface WorkerProcess {
  postMessage(message: ToWorker): void;
  onMessage(listener: (message: FromWorker) => void): void;
  /** Called once when the worker is gone (`signal` when a signal killed it). */
  onExit(listener: (exit: { code: number | null; signal?: string }) => void): void;
  kill(): void;
}

export interface WorkerLinkEvents {
  /** Everything the worker reports except job answers (those settle `request`). */
  message: [FromWorker];
  /** The worker died without being asked to (`dispose` ends it quietly). */
  crash: [{ code: number | null; signal?: string }];
}

/** What the backend needs of the training worker. */
export interface WorkerLink {
  start(run: RunOptions, runId: number): void;
  pause(): void;
  resume(): void;
  stop(): void;
  /** Runs a job; `onText` receives a chat reply's pieces. Rejects if the worker dies meanwhile. */
  request<K extends Job['kind']>(
    job: Extract<Job, { kind: K }>,
    onText?: (text: string) => void,
  ): Promise<JobResults[K]>;
  on<E extends keyof WorkerLinkEvents>(event: E, listener: (...args: WorkerLinkEvents[E]) => void): unknown;
  /** Ends the worker for good (the app is closing). */
  dispose(): Promise<void>;
}
