// The training worker in this process, behind an in-memory port (tests, the development shell's
// --worker inline). It shares the process, so a native crash takes everything with it: the app
// uses a separate process (./worker-link.ts, client-app/electron).

import { EventEmitter } from 'node:events';
import { runTrainingWorker } from './worker.ts';
import type { FromWorker, ToWorker, WorkerProcess } from './worker-protocol.ts';

/**
 * The worker in this process. Messages are copied (structuredClone) and delivered asynchronously,
 * as across a process boundary. `kill` stops the participant and then behaves like an exit.
 */
export function inProcessWorker(): WorkerProcess {
  const toWorker = new EventEmitter<{ message: [ToWorker] }>();
  const fromWorker = new EventEmitter<{ message: [FromWorker] }>();
  const exits: ((exit: { code: number | null; signal?: string }) => void)[] = [];
  let alive = true;
  const exit = (signal?: string) => {
    if (!alive) return;
    alive = false;
    setImmediate(() => exits.forEach((l) => l({ code: signal ? null : 0, signal })));
  };
  runTrainingWorker({
    postMessage: (message) => {
      const copy = structuredClone(message);
      setImmediate(() => alive && fromWorker.emit('message', copy));
    },
    onMessage: (listener) => toWorker.on('message', listener),
    close: () => exit(),
  });
  return {
    postMessage: (message) => {
      const copy = structuredClone(message);
      setImmediate(() => alive && toWorker.emit('message', copy));
    },
    onMessage: (listener) => fromWorker.on('message', listener),
    onExit: (listener) => exits.push(listener),
    kill: () => {
      if (!alive) return;
      toWorker.emit('message', { type: 'stop' });
      exit('SIGKILL');
    },
  };
}
