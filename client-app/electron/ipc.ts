// What main does with one invoke from the page, once it has checked who sent it: check the
// arguments against their declaration and call the backend (../src/app/dispatch.ts), open the
// system's file picker for chooseModel() and chooseData() called without paths, and turn the
// outcome into an InvokeResult. No Electron here: main.ts passes the pickers in, so the test runs
// this with fakes.

import { FeditError } from '@fedit/shared';
import type { ApiMethod } from '../src/app/api.ts';
import type { InvokeResult } from './channels.ts';
import { callBackend, type ApiBackend, type Pickers } from '../src/app/dispatch.ts';

export interface IpcContext extends Pickers {
  backend: ApiBackend;
  /** Where unexpected errors go in full (the app log); the page gets a short message. */
  logError(message: string): void;
}

export async function answerInvoke(
  method: ApiMethod,
  args: unknown[],
  context: IpcContext,
): Promise<InvokeResult> {
  try {
    return { ok: true, value: await callBackend(context.backend, method, args, context) };
  } catch (error) {
    return { ok: false, error: wireError(method, error, context) };
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
