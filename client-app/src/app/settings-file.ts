// app/settings.json: the person's settings and choices, kept across restarts.
//
// Read key by key, each by its rule (settings by the same rules the page's changes are checked
// with, ./validate.ts): one value this machine cannot take (more threads than it has, after the
// folder moved to another computer) falls back to its default alone, not the whole file. A file
// that is not JSON is set aside and the defaults used (settings are not secrets and hold nothing
// that cannot be chosen again); one that cannot be read is never written over (./kept-files.ts), so
// the choices in it come back once it can be read.

import { SchemaError, type Schema } from '@fedit/shared';
import type { AppSettings } from './api.ts';
import type { AppLog } from './app-log.ts';
import type { KeptFiles } from './kept-files.ts';
import { dataFiles, flag, pathText, settingsPatch } from './validate.ts';

export const DEFAULT_SETTINGS: AppSettings = {
  device: 'auto',
  maxThreads: 0,
  onlyWhenPluggedIn: true,
  onlyWhenIdle: false,
  displayName: '',
};

/** What the file holds. */
export interface StoredSettings {
  settings: AppSettings;
  modelDir?: string;
  dataFiles?: string[];
  /** The person chose to take part (start) and has not paused or left since. */
  takingPart?: boolean;
}

interface SettingsFileV1 extends StoredSettings {
  version: 1;
}

/** The rule of each choice beside the settings, as the page's choices are checked; a value that
 * breaks it is dropped alone. */
const CHOICES = {
  modelDir: pathText,
  dataFiles,
  takingPart: flag,
} satisfies { [K in Exclude<keyof StoredSettings, 'settings'>]-?: Schema<StoredSettings[K]> };

export class SettingsFile {
  readonly path: string;
  readonly #files: KeptFiles;
  readonly #log: AppLog;
  readonly #cpuThreads: number;

  /** `cpuThreads`: this machine's, the bound of maxThreads. */
  constructor(path: string, options: { files: KeptFiles; log: AppLog; cpuThreads: number }) {
    this.path = path;
    this.#files = options.files;
    this.#log = options.log;
    this.#cpuThreads = options.cpuThreads;
  }

  /** What the file holds, checked; the defaults when there is none or it is damaged or unreadable. */
  async read(): Promise<StoredSettings> {
    const raw = await this.#files.read(
      this.path,
      'the default settings are used and changes are not saved until the app starts with it readable',
    );
    if (raw === undefined) return { settings: { ...DEFAULT_SETTINGS } };
    let value: Partial<SettingsFileV1>;
    try {
      value = JSON.parse(raw) as Partial<SettingsFileV1>;
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new Error('it is not a settings object');
      }
    } catch (error) {
      await this.#files.setAside(this.path, error, 'using the default settings');
      return { settings: { ...DEFAULT_SETTINGS } };
    }
    return {
      settings: this.#checkedSettings(value.settings),
      modelDir: this.#checked(CHOICES.modelDir, value.modelDir, 'modelDir'),
      dataFiles: this.#checked(CHOICES.dataFiles, value.dataFiles, 'dataFiles'),
      takingPart: this.#checked(CHOICES.takingPart, value.takingPart, 'takingPart') ?? false,
    };
  }

  /** Saves `stored`, unless the file is there but could not be read: the choices in it stay. */
  async save(stored: StoredSettings): Promise<void> {
    if (this.#files.isUnreadable(this.path)) return;
    const file: SettingsFileV1 = { version: 1, ...stored };
    await this.#files.write(this.path, file);
  }

  #checkedSettings(stored: unknown): AppSettings {
    const settings = { ...DEFAULT_SETTINGS };
    const patch = settingsPatch(this.#cpuThreads);
    const entries = typeof stored === 'object' && stored !== null ? Object.entries(stored) : [];
    for (const [key, v] of entries) {
      Object.assign(settings, this.#checked(patch, { [key]: v }, 'settings'));
    }
    return settings;
  }

  /** `value` if it keeps `rule`; undefined (the default) with a line in the log if not, or if absent. */
  #checked<T>(rule: Schema<T>, value: unknown, name: string): T | undefined {
    if (value === undefined) return undefined;
    try {
      return rule.parse(value, name);
    } catch (error) {
      if (!(error instanceof SchemaError)) throw error;
      this.#log.warn(`${this.path}: ${error.message}; using the default`);
      return undefined;
    }
  }
}
