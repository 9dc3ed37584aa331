// The backend's link to the training worker (./worker-protocol.ts), over whatever process hosts
// it: `WorkerProcessLink` does the bookkeeping (lazy start, job ids, a crash rejecting the jobs in
// flight) for any `WorkerProcess`. The hosts:
//
//   forkedWorker()     here: a Node child process (the development shell's default); a crash,
//                      even a native one, kills only the child
//   inProcessWorker()  ./in-process-worker.ts: the worker in this process (tests, --worker inline)
//   utility process    client-app/electron: Electron's utilityProcess, in the desktop app
//
// This file does not import the worker itself, so the process that hosts the backend (Electron's
// main process) never loads onnxruntime.

import { fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { AppError } from './validate.ts';
import { FeditError } from '@fedit/shared';
import type {
  FromWorker,
  Job,
  JobResults,
  RunOptions,
  ToWorker,
  WorkerLink,
  WorkerLinkEvents,
  WorkerProcess,
} from './worker-protocol.ts';

/** How long a worker asked to quit may take to save its training state before it is killed. */
const QUIT_TIMEOUT_MS = 5000;

interface PendingJob {
  resolve: (result: never) => void;
  reject: (error: Error) => void;
  onText?: (text: string) => void;
}

export class WorkerProcessLink extends EventEmitter<WorkerLinkEvents> implements WorkerLink {
  readonly #spawn: () => WorkerProcess;
  #process: WorkerProcess | undefined;
  #jobs = new Map<number, PendingJob>();
  #nextId = 1;
  #disposed = false;

  /** `spawn` starts one worker; it is called again after a crash, when the worker is next needed. */
  constructor(spawn: () => WorkerProcess) {
    super();
    this.#spawn = spawn;
  }

  /** Whether a worker is up now. */
  get alive(): boolean {
    return this.#process !== undefined;
  }

  #ensure(): WorkerProcess {
    if (this.#disposed) throw new AppError('APP_WORKER_CRASHED', 'the app is closing');
    if (this.#process) return this.#process;
    const child = this.#spawn();
    this.#process = child;
    child.onMessage((message) => {
      if (this.#process === child) this.#receive(message);
    });
    child.onExit((exit) => {
      if (this.#process !== child) return;
      this.#process = undefined;
      const jobs = [...this.#jobs.values()];
      this.#jobs.clear();
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
      for (const job of jobs) {
        job.reject(
          new AppError('APP_WORKER_CRASHED', `the training worker ${how} while working on this; try again`),
        );
      }
      if (!this.#disposed) this.emit('crash', exit);
    });
    return child;
  }

  #receive(message: FromWorker): void {
    switch (message.type) {
      case 'chat-text':
        this.#jobs.get(message.id)?.onText?.(message.text);
        return;
      case 'job-done': {
        const job = this.#jobs.get(message.id);
        this.#jobs.delete(message.id);
        job?.resolve(message.result as never);
        return;
      }
      case 'job-failed': {
        const job = this.#jobs.get(message.id);
        this.#jobs.delete(message.id);
        job?.reject(new RemoteError(message.error.code, message.error.message));
        return;
      }
      default:
        this.emit('message', message);
    }
  }

  #send(message: ToWorker, spawn = true): void {
    if (!spawn && !this.#process) return;
    this.#ensure().postMessage(message);
  }

  start(run: RunOptions, runId: number): void {
    this.#send({ type: 'start', run, runId });
  }
  pause(): void {
    this.#send({ type: 'pause' }, false);
  }
  resume(): void {
    this.#send({ type: 'resume' }, false);
  }
  stop(): void {
    this.#send({ type: 'stop' }, false);
  }

  request<K extends Job['kind']>(
    job: Extract<Job, { kind: K }>,
    onText?: (text: string) => void,
  ): Promise<JobResults[K]> {
    return new Promise<JobResults[K]>((resolve, reject) => {
      const id = this.#nextId++;
      this.#jobs.set(id, { resolve: resolve as (r: never) => void, reject, onText });
      try {
        this.#send({ type: 'job', id, job });
      } catch (error) {
        this.#jobs.delete(id);
        reject(error as Error);
      }
    });
  }

  /** Kills the worker as a crash would (tests of the crash path). */
  kill(): void {
    this.#process?.kill();
  }

  async dispose(): Promise<void> {
    this.#disposed = true;
    const child = this.#process;
    if (!child) return;
    this.#process = undefined;
    const gone = new Promise<void>((resolve) => child.onExit(() => resolve()));
    // Ask first, so training writes its checkpoint; kill if it takes too long.
    child.postMessage({ type: 'quit' });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        child.kill();
        resolve();
      }, QUIT_TIMEOUT_MS);
    });
    await Promise.race([gone, late]);
    clearTimeout(timer);
  }
}

/**
 * An error the worker reported, with its stable code and message. Its code is whatever the worker's
 * error carried (a FeditError's code of any package, or a system error's), so it is a FeditError,
 * not one of the app's own AppError codes.
 */
export class RemoteError extends FeditError {}

/** The worker entry next to this file: the TypeScript source under tsx, else the compiled file. */
export const TRAINING_WORKER_ENTRY = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './training-worker.ts' : './training-worker.js', import.meta.url),
);

/** The worker as a Node child process. */
export function forkedWorker(options: { entry?: string; env?: NodeJS.ProcessEnv } = {}): WorkerProcess {
  const entry = options.entry ?? TRAINING_WORKER_ENTRY;
  const execArgv = entry.endsWith('.ts')
    ? ['--conditions=source', '--import', import.meta.resolve('tsx')]
    : [];
  const child = fork(entry, [], {
    execArgv,
    env: options.env ?? process.env,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  // An IPC write after the child died fails asynchronously; the exit handler reports the crash.
  child.on('error', () => undefined);
  return {
    postMessage: (message) => {
      if (child.connected) child.send(message);
    },
    onMessage: (listener) => child.on('message', (m) => listener(m as FromWorker)),
    onExit: (listener) =>
      child.once('exit', (code, signal) => listener({ code, signal: signal ?? undefined })),
    kill: () => void child.kill('SIGKILL'),
  };
}
