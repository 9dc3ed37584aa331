// What main.ts and preload.ts agree on: the IPC channel names, the shape of an answer, and where
// scripts/build-app.mjs puts each bundle (the test checks that the build writes these files).

import type { ApiMethod } from '../src/app/api.ts';

/** Main pushes every AppEvent to the window on this channel. */
export const EVENT_CHANNEL = 'fedit:event';

/** The channel of one API method; main registers exactly these with ipcMain.handle. */
export function invokeChannel(method: ApiMethod): `fedit:${ApiMethod}` {
  return `fedit:${method}`;
}

/**
 * How main answers an invoke. A rejected ipcMain.handle reaches the page as "Error invoking
 * remote method 'fedit:…': AppError: …"; an answer carries the backend's own code and message,
 * and the preload turns a failure back into an Error with exactly that message.
 */
export type InvokeResult =
  { ok: true; value: unknown } | { ok: false; error: { code: string; message: string } };

/** The files of the built app, relative to app-dist/ (and to app.asar in the installed app). */
export const APP_FILES = {
  main: 'main.mjs',
  preload: 'preload.cjs',
  trainingWorker: 'training-worker.mjs',
  rendererPage: 'renderer/index.html',
} as const;
