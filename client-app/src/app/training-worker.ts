// Process entry of the training worker. Electron starts it with utilityProcess.fork (messages on
// process.parentPort); the development shell and the tests with child_process.fork (messages on
// process.send / 'message'). Either way the worker itself is ./worker.ts.

import { runTrainingWorker } from './worker.ts';
import type { FromWorker, ToWorker, WorkerPort } from './worker-protocol.ts';

interface ElectronParentPort {
  on(event: 'message', listener: (event: { data: unknown }) => void): void;
  postMessage(message: unknown): void;
}

function parentPort(): WorkerPort {
  const electron = (process as NodeJS.Process & { parentPort?: ElectronParentPort }).parentPort;
  if (electron) {
    return {
      postMessage: (message: FromWorker) => electron.postMessage(message),
      onMessage: (listener) => electron.on('message', (event) => listener(event.data as ToWorker)),
      close: () => process.exit(0),
    };
  }
  if (process.send) {
    const send = process.send.bind(process);
    return {
      postMessage: (message: FromWorker) => void send(message),
      onMessage: (listener) => process.on('message', (message) => listener(message as ToWorker)),
      close: () => process.exit(0),
    };
  }
  throw new Error('the training worker must be started by the fedit app (no parent port, no IPC channel)');
}

// The parent going away ends the worker: nothing else would.
process.on('disconnect', () => process.exit(0));
runTrainingWorker(parentPort());
