// The federated part of `fedit demo`: a federation for the demo's base model, its coordinator on
// loopback, every participant joined with a one-time invite and running in this process, and each
// closed round evaluated (in order, while the next one trains) into a row of the table.
//
// However it ends (a participant or an evaluation failing, no round aggregated, or done), the
// participants stop and the coordinator closes: a listening coordinator would keep `fedit demo`
// from ever exiting.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlobStore, FeditError, federationPaths } from '@fedit/shared';
import { createInvite, startCoordinator } from '@fedit/coordinator';
import { initFederationFromModel } from '../operator/init-federation.ts';
import { joinFederation, Participant, type RoundHistoryEntry } from '../core/federation/index.ts';
import { roundTableHeader, roundTableRow, type DemoRound } from './demo-table.ts';
import { taskAccuracy } from './evaluate.ts';
import { demoFederationSettings } from './federation-settings.ts';
import { toJsonl, type DemoParticipantShard, type DemoSplit } from './tasks.ts';
import { DEMO_LORA } from './train.ts';

export interface DemoFederationOptions {
  /** The demo's folder: the participants' homes go under it. */
  root: string;
  /** The federation folder to create. */
  fedDir: string;
  modelDir: string;
  split: DemoSplit;
  rounds: number;
  threads: number;
  print: (line: string) => void;
  /** Held-out loss of the base model with an adapter, on the evaluation tasks. */
  heldOutLoss: (tensors: ReadonlyMap<string, Float32Array>) => Promise<number>;
}

/** Runs the demo federation to its last round; the table's rows, one per aggregated round. */
export async function runDemoFederation(o: DemoFederationOptions): Promise<DemoRound[]> {
  const n = o.split.participants.length;
  await initFederationFromModel(o.fedDir, {
    modelDir: o.modelDir,
    modelName: 'fedit demo base (built in)',
    seed: 1,
    settings: demoFederationSettings(n, o.rounds),
  });
  const participants = new DemoParticipants(o);
  const rows = new RoundRows(o, participants);
  const coordinator = await startCoordinator({
    dir: o.fedDir,
    host: '127.0.0.1',
    port: 0,
    onEvent: (e) => {
      if (e.type === 'round-closed') rows.closed(e.round, e.adapter, e.updates);
      if (e.type === 'round-aborted') o.print(`round ${e.round} aborted: ${e.reason}`);
    },
  });
  o.print(`3. coordinator listening on ${coordinator.url} (federation folder ${o.fedDir})`);
  try {
    for (const shard of o.split.participants) await participants.join(shard, coordinator.url);
    o.print(`   ${n} participants joined with one-time invites and are training\n`);
    o.print(roundTableHeader());
    await Promise.race([coordinator.finished, participants.failure]);
    // Rounds close (or abort) in order; the last evaluation may still be running.
    const table = await rows.all();
    if (table.length === 0) {
      throw new FeditError(
        'DEMO_FAILED',
        `no round was aggregated (every round aborted, see above); the federation folder ${o.fedDir} holds the log`,
      );
    }
    await participants.finish();
    return table;
  } finally {
    await participants.stop();
    await coordinator.close();
  }
}

/**
 * The demo's participants, each joined with a one-time invite and running in this process. Their
 * round entries are kept for the table. Every round needs all of them (minUpdates = n), so one
 * that fails would leave the rest waiting out the round deadline: the first failure rejects
 * `failure` at once, naming the participant.
 */
class DemoParticipants {
  readonly failure: Promise<never>;
  #fail: (err: Error) => void = () => {};
  readonly #o: DemoFederationOptions;
  readonly #stop = new AbortController();
  readonly #runs: Promise<unknown>[] = [];
  readonly #history = new Map<number, { name: string; entry: RoundHistoryEntry }[]>();

  constructor(o: DemoFederationOptions) {
    this.#o = o;
    this.failure = new Promise<never>((_, reject) => (this.#fail = reject));
    this.failure.catch(() => {}); // handled by the caller's race; a failure after it is moot
  }

  /** Writes the shard's data, joins with an invite to `url`, and starts the participant. */
  async join(shard: DemoParticipantShard, url: string): Promise<void> {
    const { root, fedDir, modelDir, threads } = this.#o;
    const home = join(root, 'participants', shard.name);
    const dataFile = join(home, 'data.jsonl');
    try {
      mkdirSync(home, { recursive: true });
      writeFileSync(dataFile, toJsonl(shard.train));
      await joinFederation(createInvite(fedDir, { url, note: shard.name }), {
        displayName: shard.name,
        home,
        confirm: () => true,
      });
    } catch (err) {
      // A participant that cannot even be set up (its folder or data not writable) fails the demo
      // as one that fails while running does: at once, named.
      throw failedParticipant(shard.name, err);
    }
    const p = new Participant();
    p.on('round', (e: RoundHistoryEntry) => {
      if (e.trainLoss === undefined || !e.uploaded) return;
      const list = (this.#history.get(e.round) ?? []).filter((x) => x.name !== shard.name);
      list.push({ name: shard.name, entry: e });
      this.#history.set(e.round, list);
    });
    const run = p.start({ modelDir, dataFiles: [dataFile], home, threads, signal: this.#stop.signal });
    this.#runs.push(run.catch((err) => this.#fail(failedParticipant(shard.name, err))));
  }

  /** Who took part in `round` (uploaded an update that was counted), by name. */
  tookPart(round: number): { name: string; entry: RoundHistoryEntry }[] {
    return (this.#history.get(round) ?? []).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Waits for the participants, which finish by themselves when the last round closes. */
  async finish(): Promise<void> {
    // The signal only covers stragglers.
    const timeout = setTimeout(() => this.#stop.abort(), 30_000);
    await Promise.allSettled(this.#runs);
    clearTimeout(timeout);
  }

  /** Stops every participant still running and waits for them. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled(this.#runs);
  }
}

function failedParticipant(name: string, err: unknown): FeditError {
  return new FeditError('DEMO_FAILED', `${name} failed: ${(err as Error).message}`);
}

/** Each closed round evaluated, in order, into a printed row; an evaluation that fails fails `all`. */
class RoundRows {
  readonly #o: DemoFederationOptions;
  readonly #participants: DemoParticipants;
  readonly #blobs: BlobStore;
  readonly #rows: DemoRound[] = [];
  #evaluating = Promise.resolve();

  constructor(o: DemoFederationOptions, participants: DemoParticipants) {
    this.#o = o;
    this.#participants = participants;
    this.#blobs = new BlobStore(federationPaths(o.fedDir).blobs);
  }

  closed(round: number, adapterHash: string, updates: number): void {
    this.#evaluating = this.#evaluating.then(async () => {
      const row = await this.#evaluate(round, adapterHash, updates);
      this.#rows.push(row);
      this.#o.print(roundTableRow(row));
    });
    this.#evaluating.catch(() => {}); // awaited by `all`; not unhandled in between
  }

  /** The rows of every round closed so far, once their evaluations are done. */
  async all(): Promise<DemoRound[]> {
    await this.#evaluating;
    return this.#rows;
  }

  async #evaluate(round: number, adapterHash: string, updates: number): Promise<DemoRound> {
    const { modelDir, split, threads } = this.#o;
    const tensors = this.#blobs.getF32(adapterHash)!;
    const adapter = { config: DEMO_LORA, tensors };
    const accuracy = await taskAccuracy({ modelDir, adapter, examples: split.evaluation, threads });
    const heldOutLoss = await this.#o.heldOutLoss(tensors);
    const took = this.#participants.tookPart(round);
    return {
      round,
      participants: updates,
      took: took.map((t) => t.name),
      trainLoss: mean(took.map((t) => t.entry.trainLoss!)),
      heldOutLoss,
      accuracy,
    };
  }
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}
