// One call from the page to the backend, whatever carried it (Electron's IPC or the development
// shell's WebSocket): the method by name, its arguments as sent (the backend validates them), and
// the file pickers for chooseModel() / chooseData() called without paths.

import type { ApiMethod, FeditAppApi } from './api.ts';
import { AppError } from './validate.ts';

export interface Pickers {
  /** The model folder the person picked, or undefined when they cancelled. */
  pickModelDir(): Promise<string | undefined>;
  /** The data files the person picked, or undefined when they cancelled. */
  pickDataFiles(): Promise<string[] | undefined>;
}

export async function callBackend(
  backend: Omit<FeditAppApi, 'onEvent'>,
  method: ApiMethod,
  args: readonly unknown[],
  pickers?: Pickers,
): Promise<unknown> {
  const [a, b] = args;
  // JSON has no undefined: a page asking for a picker sends null over the shell's socket.
  const noPath = a === null || a === undefined;
  if ((method === 'chooseModel' || method === 'chooseData') && noPath && !pickers) {
    throw new AppError(
      'APP_ARGUMENT',
      'the development shell cannot open a file picker: type the path in the box and press the button next to it',
    );
  }
  switch (method) {
    case 'getState':
      return backend.getState();
    case 'createIdentity':
      return backend.createIdentity();
    case 'updateSettings':
      return backend.updateSettings(a as never);
    case 'inspectInvite':
      return backend.inspectInvite(a as never);
    case 'joinFederation':
      return backend.joinFederation(a as never);
    case 'leaveFederation':
      return backend.leaveFederation();
    case 'chooseModel': {
      // Cancelling the picker changes nothing.
      const dir = noPath ? await pickers!.pickModelDir() : a;
      return dir === undefined ? backend.getState() : backend.chooseModel(dir as never);
    }
    case 'chooseData': {
      const files = noPath ? await pickers!.pickDataFiles() : a;
      return files === undefined ? backend.getState() : backend.chooseData(files as never);
    }
    case 'start':
      return backend.start();
    case 'pause':
      return backend.pause();
    case 'resume':
      return backend.resume();
    case 'chat':
      return backend.chat(a as never, b as never);
    case 'openLogs':
      return backend.openLogs();
    case 'readLogs':
      return backend.readLogs();
    default: {
      const unknown: never = method;
      throw new AppError('APP_ARGUMENT', `unknown method ${JSON.stringify(unknown)}`);
    }
  }
}
