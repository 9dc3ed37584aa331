// The desktop app's preload: the one bridge between the sandboxed renderer and the main process.
// It exposes exactly the FeditAppApi as `window.fedit` and nothing else: no ipcRenderer, no
// channel the page could choose, no Node. Each method is one invoke on its own channel (main
// checks the sender, then the arguments against their declaration); events arrive on one channel.
//
// A sandboxed preload is a classic script whose require() knows only a few modules: this file
// imports 'electron' and, for the method names, the API contract, which esbuild inlines
// (scripts/build-app.mjs bundles it to CommonJS).

import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { API_METHODS, type AppEvent, type FeditAppApi } from '../src/app/api.ts';
import { EVENT_CHANNEL, invokeChannel, type InvokeResult } from './channels.ts';

/** An error as the backend reported it. (contextBridge passes only an Error's message on.) */
class FeditAppError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'FeditAppError';
    this.code = code;
  }
}

function exposedApi(): FeditAppApi {
  const api: Record<string, unknown> = {};
  for (const method of API_METHODS) {
    const channel = invokeChannel(method);
    // The page's arguments go on as they are: IPC copies them (structured clone) and main validates.
    api[method] = async (...args: unknown[]) => {
      const result = (await ipcRenderer.invoke(channel, ...args)) as InvokeResult;
      if (!result.ok) throw new FeditAppError(result.error.code, result.error.message);
      return result.value;
    };
  }
  api.onEvent = (listener: (event: AppEvent) => void) => {
    if (typeof listener !== 'function') throw new TypeError('onEvent needs a listener function');
    // The IpcRendererEvent (its `sender` is the ipcRenderer itself) never reaches the page.
    const forward = (_event: IpcRendererEvent, appEvent: AppEvent) => listener(appEvent);
    ipcRenderer.on(EVENT_CHANNEL, forward);
    return () => {
      ipcRenderer.removeListener(EVENT_CHANNEL, forward);
    };
  };
  return api as unknown as FeditAppApi;
}

contextBridge.exposeInMainWorld('fedit', exposedApi());
