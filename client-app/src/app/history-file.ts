// app/history-<federation>.json: the rounds this computer saw, as the page shows them.
//
// A file that cannot be parsed, or that holds entries that are not round records (each is read by
// the entry's one declaration, roundHistoryEntry), is set aside (the next round would otherwise
// overwrite it) and the records that are sound are kept; the log names the first field at fault.
// One that is there but cannot be read is left alone (./kept-files.ts): the rounds of this session
// are shown, and join those it holds once it can be read again, before anything is saved to it.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SchemaError } from '@fedit/shared';
import { roundHistoryEntry, type RoundHistoryEntry } from '../core/federation/events.ts';
import type { KeptFiles } from './kept-files.ts';

export class HistoryFile {
  readonly #dir: string;
  readonly #files: KeptFiles;
  #federation: string | undefined;
  #entries: RoundHistoryEntry[] = [];

  /** `dir`: the folder of the app's own files. */
  constructor(dir: string, files: KeptFiles) {
    this.#dir = dir;
    this.#files = files;
  }

  pathOf(federation: string): string {
    return join(this.#dir, `history-${federation}.json`);
  }

  /** The rounds, oldest first (copies). */
  get entries(): RoundHistoryEntry[] {
    return this.#entries.map((e) => ({ ...e }));
  }

  /** Reads the history of `federation` (none: forgets the one read before). */
  async open(federation: string | undefined): Promise<void> {
    this.#federation = federation;
    this.#entries = federation ? await this.#read(federation) : [];
  }

  /** Adds a round (or what is new about one already there) and saves the history. */
  async record(entry: RoundHistoryEntry): Promise<void> {
    const federation = this.#federation;
    if (!federation) return;
    this.#merge([entry], true);
    const path = this.pathOf(federation);
    if (this.#files.isUnreadable(path)) {
      // Once it can be read again, the rounds it holds join this session's before it is saved.
      const stored = await this.#read(federation);
      if (this.#files.isUnreadable(path)) return;
      this.#merge(stored, false);
    }
    await this.#files.write(path, this.#entries);
  }

  /** Deletes the history of the open federation (it was left). */
  async remove(): Promise<void> {
    if (this.#federation) await rm(this.pathOf(this.#federation), { force: true });
    await this.open(undefined);
  }

  /** Adds `entries`; one of a round already there updates it (`update`) or is dropped. */
  #merge(entries: RoundHistoryEntry[], update: boolean): void {
    for (const entry of entries) {
      const i = this.#entries.findIndex((e) => e.round === entry.round);
      if (i < 0) this.#entries.push(entry);
      else if (update) this.#entries[i] = { ...this.#entries[i], ...entry };
    }
    this.#entries.sort((a, b) => a.round - b.round);
  }

  async #read(federation: string): Promise<RoundHistoryEntry[]> {
    const path = this.pathOf(federation);
    const text = await this.#files.read(path, 'rounds of this session are shown but not saved to it');
    if (text === undefined) return [];
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      await this.#files.setAside(path, error, 'starting an empty round history');
      return [];
    }
    const entries: unknown[] = Array.isArray(value) ? value : [];
    const sound: RoundHistoryEntry[] = [];
    let firstProblem: string | undefined;
    for (let i = 0; i < entries.length; i++) {
      try {
        sound.push(roundHistoryEntry.parse(entries[i], `entries[${i}]`));
      } catch (error) {
        if (!(error instanceof SchemaError)) throw error;
        firstProblem ??= error.message;
      }
    }
    if (Array.isArray(value) && firstProblem === undefined) return sound;
    const why = Array.isArray(value)
      ? `${firstProblem}; ${entries.length - sound.length} of its ${entries.length} entries are not round records`
      : 'it is not a list of rounds';
    await this.#files.setAside(path, new Error(why), `keeping the ${sound.length} sound rounds`);
    if (sound.length > 0) await this.#files.write(path, sound);
    return sound;
  }
}
