// What main does with one invoke from the page, once it has checked who sent it: call the backend
// (which validates every argument), open the system's file picker for chooseModel() and
// chooseData() called without paths, and turn the outcome into an InvokeResult. No Electron
// here: main.ts passes the pickers in, so the test runs this with fakes.

import { FeditError } from '@fedit/shared';
import type { ApiMethod, FeditAppApi } from '../src/app/api.ts';
import type { InvokeResult } from './channels.ts';

export interface IpcContext {
  backend: Omit<FeditAppApi, 'onEvent'>;
  /** The model folder the person picked, or undefined when they cancelled. */
  pickModelDir(): Promise<string | undefined>;
  /** The data files the person picked, or undefined when they cancelled. */
  pickDataFiles(): Promise<string[] | undefined>;
  /** Where unexpected errors go in full (the app log); the page gets a short message. */
  logError(message: string): void;
}

export async function answerInvoke(
  method: ApiMethod,
  args: unknown[],
  context: IpcContext,
): Promise<InvokeResult> {
  try {
    return { ok: true, value: await dispatch(method, args, context) };
  } catch (error) {
    return { ok: false, error: wireError(method, error, context) };
  }
}

async function dispatch(
  method: ApiMethod,
  args: unknown[],
  { backend, ...picker }: IpcContext,
): Promise<unknown> {
  const [a, b] = args;
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
      // No path: the person chooses in the system's picker; cancelling changes nothing.
      const dir = a ?? (await picker.pickModelDir());
      return dir === undefined ? backend.getState() : backend.chooseModel(dir as never);
    }
    case 'chooseData': {
      const files = a ?? (await picker.pickDataFiles());
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
      throw new FeditError('APP_ARGUMENT', `unknown method ${JSON.stringify(unknown)}`);
    }
  }
}

function wireError(
  method: ApiMethod,
  error: unknown,
  context: IpcContext,
): { code: string; message: string } {
  if (error instanceof FeditError) return { code: error.code, message: error.message };
  const system = error as NodeJS.ErrnoException;
  if (typeof system?.code === 'string' && typeof system.message === 'string') {
    return { code: system.code, message: system.message };
  }
  context.logError(`${method} failed: ${(error as Error)?.stack ?? String(error)}`);
  return { code: 'INTERNAL', message: 'something went wrong inside the app; the logs say more' };
}
