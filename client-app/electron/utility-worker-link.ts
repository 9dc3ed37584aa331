// The training worker in an Electron utilityProcess: a separate Node process, so a native crash
// (onnxruntime, a GPU driver) or running out of memory kills the worker and not the window.
// WorkerProcessLink (src/app/worker-link.ts) does the rest: an exit it did not ask for is a
// 'crash', which the backend reports ('crashed') before a new worker is forked and resumes from
// the participant's files.
//
// Written against the few members of utilityProcess it uses, so the test runs it on a fake.

import { createInterface } from 'node:readline';
import { WorkerProcessLink } from '../src/app/worker-link.ts';
import type { FromWorker, ToWorker, WorkerProcess } from '../src/app/worker-protocol.ts';

/** The part of Electron's UtilityProcess this uses. */
export interface UtilityProcessLike {
  readonly pid: number | undefined;
  readonly stdout: NodeJS.ReadableStream | null;
  readonly stderr: NodeJS.ReadableStream | null;
  postMessage(message: unknown): void;
  kill(): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  on(event: 'error', listener: (type: string, location: string, report: string) => void): unknown;
}

export type ForkUtility = (
  modulePath: string,
  args: string[],
  options: { serviceName: string; stdio: ['ignore', 'pipe', 'pipe'] },
) => UtilityProcessLike;

export interface UtilityWorkerOptions {
  /** The bundled worker entry (app-dist/training-worker.mjs). */
  entry: string;
  /** Electron's utilityProcess.fork. */
  fork: ForkUtility;
  /** Where the worker's own output goes (the app log); the console of a packaged app is nowhere. */
  output?: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** One training worker as a utility process. */
export function utilityWorkerProcess(options: UtilityWorkerOptions): WorkerProcess {
  const child = options.fork(options.entry, [], {
    serviceName: 'fedit training',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let alive = true;
  const exits: ((exit: { code: number | null; signal?: string }) => void)[] = [];
  for (const [stream, name] of [
    [child.stdout, 'stdout'],
    [child.stderr, 'stderr'],
  ] as const) {
    if (!stream) continue;
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on('line', (line) => options.output?.(line, name));
  }
  // A V8 fatal error: the 'exit' that follows is what reports the crash.
  child.on('error', (type, location) => options.output?.(`${type} at ${location}`, 'stderr'));
  child.on('exit', (code) => {
    alive = false;
    for (const listener of exits) listener({ code });
  });
  return {
    postMessage(message: ToWorker) {
      // After an exit the link has already rejected what was in flight; nothing to deliver to.
      if (alive) child.postMessage(message);
    },
    onMessage(listener) {
      child.on('message', (message) => listener(message as FromWorker));
    },
    onExit(listener) {
      if (alive) exits.push(listener);
      else queueMicrotask(() => listener({ code: null }));
    },
    kill() {
      if (alive) child.kill();
    },
  };
}

/** The backend's WorkerLink over utility processes: a new one after each crash, when next needed. */
export function utilityWorkerLink(options: UtilityWorkerOptions): WorkerProcessLink {
  return new WorkerProcessLink(() => utilityWorkerProcess(options));
}
