// A model folder's fedit identity as the engine computes it (kernels/src/model/checkpoint.ts), for
// fetchHubModel's check in processes that host the engine (the CLI, tests). Its own file so that
// hub-fetch.ts never imports the engine: the app's main process downloads, and must not load it.

import { loadCheckpoint } from '@fedit/kernels';

/** The identity of the model in `dir`, its weights converted under `cacheDir`. */
export async function engineIdentity(dir: string, cacheDir: string): Promise<string> {
  return (await loadCheckpoint(dir, { cacheDir })).identity;
}
