// One call from the page to the backend, whatever carried it (Electron's IPC or the development
// shell's WebSocket): the method by name, its arguments checked against their declaration
// (./validate.ts) before the backend sees them, and the file pickers for chooseModel() /
// chooseData() called without paths.

import type { ApiMethod, FeditAppApi } from './api.ts';
import { AppError, parseApiArguments, type Machine } from './validate.ts';

/** What the page calls: the API, and the machine its arguments are checked for. */
export interface ApiBackend extends Omit<FeditAppApi, 'onEvent'>, Machine {}

export interface Pickers {
  /** The model folder the person picked, or undefined when they cancelled. */
  pickModelDir(): Promise<string | undefined>;
  /** The data files the person picked, or undefined when they cancelled. */
  pickDataFiles(): Promise<string[] | undefined>;
  /** The folder to save the adapter in, or undefined when they cancelled. */
  pickAdapterFolder(): Promise<string | undefined>;
}

export async function callBackend(
  backend: ApiBackend,
  method: ApiMethod,
  values: readonly unknown[],
  pickers?: Pickers,
): Promise<unknown> {
  // Each case names its method, so the arguments have that method's declared types.
  const checked = <M extends ApiMethod>(m: M) => parseApiArguments(m, values, backend);
  switch (method) {
    case 'getState':
      return backend.getState(...checked(method));
    case 'createIdentity':
      return backend.createIdentity(...checked(method));
    case 'updateSettings':
      return backend.updateSettings(...checked(method));
    case 'inspectInvite':
      return backend.inspectInvite(...checked(method));
    case 'joinFederation':
      return backend.joinFederation(...checked(method));
    case 'estimateCost':
      return backend.estimateCost(...checked(method));
    case 'leaveFederation':
      return backend.leaveFederation(...checked(method));
    case 'renameParticipant':
      return backend.renameParticipant(...checked(method));
    case 'chooseModel': {
      const [dir] = checked(method);
      if (dir !== undefined) return backend.chooseModel(dir);
      // Cancelling the picker changes nothing.
      const picked = await picker(pickers).pickModelDir();
      return picked === undefined ? backend.getState() : backend.chooseModel(picked);
    }
    case 'downloadModel':
      return backend.downloadModel(...checked(method));
    case 'chooseData': {
      const [files] = checked(method);
      if (files !== undefined) return backend.chooseData(files);
      const picked = await picker(pickers).pickDataFiles();
      return picked === undefined ? backend.getState() : backend.chooseData(picked);
    }
    case 'start':
      return backend.start(...checked(method));
    case 'pause':
      return backend.pause(...checked(method));
    case 'resume':
      return backend.resume(...checked(method));
    case 'saveAdapter': {
      const [folder] = checked(method);
      if (folder !== undefined) return backend.saveAdapter(folder);
      const picked = await picker(pickers).pickAdapterFolder();
      return picked === undefined ? undefined : backend.saveAdapter(picked);
    }
    case 'chat':
      return backend.chat(...checked(method));
    case 'openLogs':
      return backend.openLogs(...checked(method));
    case 'readLogs':
      return backend.readLogs(...checked(method));
    default: {
      const unknown: never = method;
      throw new AppError('APP_ARGUMENT', `unknown method ${JSON.stringify(unknown)}`);
    }
  }
}

function picker(pickers: Pickers | undefined): Pickers {
  if (pickers) return pickers;
  throw new AppError(
    'APP_ARGUMENT',
    'the development shell cannot open a file picker: type the path in the box and press the button next to it',
  );
}
