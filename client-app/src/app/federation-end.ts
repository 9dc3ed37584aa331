// app/ended-<federation>.json: the federation this computer is in has ended, and where its final
// adapter is kept. Written when the training worker's run ends with the federation's end (the
// participant fetched the final adapter, hash-checked, into the adapter cache); read when the app
// opens. Without it, an app opened after the end (the coordinator gone, or serving read-only) would
// try to take part again and show "Connecting to the coordinator" for ever; with it, the page says
// that the federation has ended and where the adapter is, and "Save adapter…" writes it out.
//
// A damaged file is set aside (./kept-files.ts) and the app behaves as before the end was known:
// taking part again fetches the final adapter again from a coordinator that still serves it.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTENT_HASH_PATTERN, MAX_ROUND, SchemaError, schema, type Infer } from '@fedit/shared';
import type { KeptFiles } from './kept-files.ts';

const federationEnd = schema.object(
  {
    /** Rounds the federation ran. */
    rounds: schema.int(0, MAX_ROUND),
    /** Its final global adapter, and the file in this computer's adapter cache that holds it. */
    adapterHash: schema.pattern(CONTENT_HASH_PATTERN, 'a content hash (sha256:<64 hex>)'),
    adapterPath: schema.predicate<string>(
      (v) => typeof v === 'string' && v.length > 0,
      (v) => `must be a path, got ${JSON.stringify(v)}`,
      'TYPE',
    ),
    /** When this computer learnt of the end (ms since 1970). */
    endedAt: schema.int(0, Number.MAX_SAFE_INTEGER),
  },
  { others: 'drop' },
);
export type FederationEnd = Infer<typeof federationEnd>;

/** "the federation has ended: your adapter is saved at …", as `fedit client run` says it. */
export function endedSentence(end: Pick<FederationEnd, 'rounds' | 'adapterPath'>): string {
  const rounds = `${end.rounds} round${end.rounds === 1 ? '' : 's'}`;
  return `the federation has ended after ${rounds}: your adapter is saved at ${end.adapterPath}`;
}

export class FederationEndFile {
  readonly #dir: string;
  readonly #files: KeptFiles;
  #federation: string | undefined;
  #end: FederationEnd | undefined;

  /** `dir`: the folder of the app's own files. */
  constructor(dir: string, files: KeptFiles) {
    this.#dir = dir;
    this.#files = files;
  }

  pathOf(federation: string): string {
    return join(this.#dir, `ended-${federation}.json`);
  }

  /** The end of the open federation, when this computer knows of it. */
  get current(): FederationEnd | undefined {
    return this.#end && { ...this.#end };
  }

  /** Reads what is known of `federation`'s end (none: forgets the one read before). */
  async open(federation: string | undefined): Promise<void> {
    this.#federation = federation;
    this.#end = federation ? await this.#read(federation) : undefined;
  }

  /** The open federation has ended with `end`: kept, and saved. */
  async record(end: FederationEnd): Promise<void> {
    if (!this.#federation) return;
    this.#end = { ...end };
    await this.#files.write(this.pathOf(this.#federation), this.#end);
  }

  /** Deletes the record of the open federation (it was left). */
  async remove(): Promise<void> {
    if (this.#federation) await rm(this.pathOf(this.#federation), { force: true });
    await this.open(undefined);
  }

  async #read(federation: string): Promise<FederationEnd | undefined> {
    const path = this.pathOf(federation);
    const text = await this.#files.read(path, 'the federation is taken to be still running');
    if (text === undefined) return undefined;
    try {
      return federationEnd.parse(JSON.parse(text), 'the federation end');
    } catch (error) {
      if (!(error instanceof SchemaError) && !(error instanceof SyntaxError)) throw error;
      await this.#files.setAside(path, error, 'the federation is taken to be still running');
      return undefined;
    }
  }
}
