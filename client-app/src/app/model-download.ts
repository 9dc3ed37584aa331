// The app's download step for the base model: when the federation's operator named the Hugging
// Face repository it comes from, the participant can download it instead of finding a folder. The
// download is core/model/hub-fetch.ts's (resumable, every file checked, the identity verified); the
// identity is computed by the training worker, which hosts the engine (the app's main process
// never loads it). The models go under <home>/models/<owner>--<name>@<revision>.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { formatModelRepo, type ModelRepo } from '@fedit/shared';
import { fetchHubModel, type ModelFetchProgress } from '../core/model/hub-fetch.ts';
import type { FederationSettings } from '../core/federation/index.ts';
import type { ModelDownload } from './api.ts';
import type { AppLog } from './app-log.ts';
import { AppError } from './validate.ts';
import type { WorkerLink } from './worker-protocol.ts';

export const MODELS_DIR = 'models';

/** Progress reaches the page at most this often (a download calls back on every chunk). */
const PROGRESS_EVERY_MS = 250;

export interface ModelDownloadOptions {
  home: string;
  worker: WorkerLink;
  log: AppLog;
  /** Called when the download's state changes (the backend sends the page a new state). */
  onChange: () => void;
  /** The Hub's address (default: $HF_ENDPOINT, else the Hugging Face Hub). */
  hubUrl?: string;
}

export class ModelDownloads {
  readonly #o: ModelDownloadOptions;
  #state: ModelDownload | undefined;

  constructor(options: ModelDownloadOptions) {
    this.#o = options;
  }

  get state(): ModelDownload | undefined {
    return this.#state && { ...this.#state };
  }

  /** The federation's base model, downloaded and verified (or already there); returns its folder. */
  async download(federation: FederationSettings | undefined): Promise<string> {
    if (!federation)
      throw new AppError('APP_NOT_READY', 'join a federation first: its settings name the model');
    const { repo, revision, identity, name } = federation.baseModel;
    if (repo === undefined)
      throw new AppError(
        'APP_NOT_READY',
        `the federation does not say where to download its base model ${name}; ask its organiser for the model folder and choose it`,
      );
    if (this.#state?.state === 'downloading')
      throw new AppError('APP_BUSY', 'the model is already downloading');
    const source: ModelRepo = revision === undefined ? { repo } : { repo, revision };
    const dir = join(this.#o.home, MODELS_DIR, folderName(source));
    this.#state = { source: formatModelRepo(source), dir, state: 'downloading', done: 0, total: 0 };
    this.#o.onChange();
    if (existsSync(dir)) return this.#finish(dir, 'already downloaded');
    this.#o.log.info(`downloading the base model ${formatModelRepo(source)} into ${dir}`);
    try {
      await fetchHubModel({
        source,
        out: dir,
        expectedIdentity: identity,
        hubUrl: this.#o.hubUrl,
        onProgress: this.#progress(),
        identityOf: async (modelDir, cacheDir) =>
          (await this.#o.worker.request({ kind: 'check-model', dir: modelDir, cacheDir })).identity,
      });
    } catch (error) {
      const problem = (error as Error).message;
      this.#state = { ...this.#state, state: 'failed', problem };
      this.#o.log.warn(`the base model's download failed: ${problem}`);
      this.#o.onChange();
      throw error;
    }
    return this.#finish(dir, 'downloaded and verified');
  }

  #finish(dir: string, how: string): string {
    this.#state = { ...this.#state!, state: 'done', done: this.#state!.total };
    this.#o.log.info(`base model ${this.#state.source} ${how}: ${dir}`);
    this.#o.onChange();
    return dir;
  }

  #progress(): (p: ModelFetchProgress) => void {
    let shown = 0;
    return (p) => {
      this.#state = { ...this.#state!, done: p.done, total: p.total, file: p.file };
      const now = Date.now();
      if (now - shown >= PROGRESS_EVERY_MS || p.done === p.total) {
        shown = now;
        this.#o.onChange();
      }
    };
  }
}

/** owner--name@revision: one folder per repository and revision, readable in a file manager. */
function folderName(source: ModelRepo): string {
  const [owner, name] = source.repo.split('/');
  return `${owner}--${name}@${(source.revision ?? 'main').replace(/[^A-Za-z0-9._-]/g, '-')}`;
}
