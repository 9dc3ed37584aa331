// A whole federation on loopback, through the real protocol: the federation created from a base
// model, its coordinator listening on 127.0.0.1, every participant joined with a one-time invite
// and running in this process (the real Participant: download, local training, signed and sealed
// upload), and each closed round handed, in order, to the caller (while the next one trains).
// `fedit demo` and `fedit simulate` both run their federations here.
//
// Seeded end to end when `seed` is given: the initial adapter's A factors, the federation id and
// every participant's identity are derived from it. A participant's identity fixes its id, and its
// id and the round number fix its local run's seed (participantSeed), hence its data order: the
// same seed gives the same global adapter after every round. The coordinator's own keys stay random:
// they sign the log and never touch the arithmetic. Seeded identities are anyone's to recompute
// (a small seed through SHA-256): for simulations on loopback only, never a real federation.
//
// However it ends (a participant or a round callback failing, no round aggregated, or done), the
// participants stop and the coordinator closes: a listening coordinator would keep the process
// from ever exiting.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BlobStore,
  FeditError,
  federationPaths,
  generateIdentity,
  serializeIdentity,
  sha256,
  toHex,
} from '@fedit/shared';
import { createInvite, startCoordinator, type FederationSettings } from '@fedit/coordinator';
import type { LoraConfig } from '@fedit/kernels';
import { initFederationFromModel } from '../operator/init-federation.ts';
import {
  IDENTITY_FILE,
  joinFederation,
  Participant,
  requireIdentity,
  writePrivateFile,
  type Membership,
  type RoundHistoryEntry,
} from '../core/federation/index.ts';
import { toJsonl, type InstructionRecord } from '../demo/tasks.ts';
import { runAdversary, type Attack } from './adversary.ts';

export interface FederationMember {
  name: string;
  train: readonly InstructionRecord[];
  /** Take part as a poisoning peer (adversary.ts) instead of the real Participant. */
  attack?: Attack;
  /** Train this LoRA rank, below the federation's (client join --rank); default: the federation's. */
  rank?: number;
}

/** A participant's counted update in a round. */
export interface TookPart {
  name: string;
  trainLoss: number;
}

/** A round the coordinator closed: its global adapter and who took part. */
export interface ClosedRound {
  round: number;
  adapterHash: string;
  tensors: Map<string, Float32Array>;
  updates: number;
  /** The participants who uploaded an update this round, by name. */
  took: TookPart[];
}

export interface LoopbackFederationOptions<Row> {
  /** The participants' homes go under `<root>/participants/<name>`. */
  root: string;
  /** The federation folder to create. */
  fedDir: string;
  modelDir: string;
  modelName: string;
  members: readonly FederationMember[];
  settings: Partial<FederationSettings>;
  /** Seeds the initial adapter; with `seededIdentities`, also the federation id and identities. */
  seed: number;
  /** Derive the federation id and every participant's identity from `seed` (default: random). */
  seededIdentities?: boolean;
  threads: number;
  /** Each closed round, in order; its result is a row of the returned table. */
  onRound: (closed: ClosedRound) => Promise<Row>;
  onListening?: (url: string) => void;
  onJoined?: () => void;
  onAborted?: (round: number, reason: string) => void;
  /** A poisoning member's update the coordinator refused. */
  onRefused?: (name: string, round: number, reason: string) => void;
}

/** Runs the federation to its last round; one row per aggregated round. */
export async function runLoopbackFederation<Row>(o: LoopbackFederationOptions<Row>): Promise<Row[]> {
  await initFederationFromModel(o.fedDir, {
    modelDir: o.modelDir,
    modelName: o.modelName,
    seed: o.seed,
    settings: o.seededIdentities ? { id: seededFederationId(o.seed), ...o.settings } : o.settings,
  });
  const participants = new LoopbackParticipants(o);
  const rows = new ClosedRounds(o, participants);
  const coordinator = await startCoordinator({
    dir: o.fedDir,
    host: '127.0.0.1',
    port: 0,
    onEvent: (e) => {
      if (e.type === 'round-closed') rows.closed(e.round, e.adapter, e.updates);
      if (e.type === 'round-aborted') o.onAborted?.(e.round, e.reason);
    },
  });
  o.onListening?.(coordinator.url);
  try {
    for (const [index, member] of o.members.entries()) {
      await participants.join(member, index, coordinator.url);
    }
    o.onJoined?.();
    await Promise.race([coordinator.finished, participants.failure]);
    // Rounds close (or abort) in order; the last round's callback may still be running.
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

/** The 32-byte identity seed of participant `index` in a run seeded with `seed`. */
export function participantIdentitySeed(seed: number, index: number): Uint8Array {
  return sha256(new TextEncoder().encode(`fedit/simulate/identity/v1:${seed}:${index}`));
}

/** A federation id in initFederation's format (fed- and 12 hex digits), derived from the seed. */
function seededFederationId(seed: number): string {
  return `fed-${toHex(sha256(new TextEncoder().encode(`fedit/simulate/federation/v1:${seed}`))).slice(0, 12)}`;
}

/**
 * The participants, each joined with a one-time invite and running in this process. Their round
 * entries are kept for the rows. Every round needs all of them (minUpdates = n), so one that fails
 * would leave the rest waiting out the round deadline: the first failure rejects `failure` at
 * once, naming the participant.
 */
class LoopbackParticipants {
  readonly failure: Promise<never>;
  #fail: (err: Error) => void = () => {};
  readonly #o: LoopbackFederationOptions<unknown>;
  readonly #stop = new AbortController();
  readonly #runs: Promise<unknown>[] = [];
  readonly #history = new Map<number, TookPart[]>();

  constructor(o: LoopbackFederationOptions<unknown>) {
    this.#o = o;
    this.failure = new Promise<never>((_, reject) => (this.#fail = reject));
    this.failure.catch(() => {}); // handled by the caller's race; a failure after it is moot
  }

  /** Writes the member's data (and seeded identity), joins with an invite to `url`, and starts it. */
  async join(member: FederationMember, index: number, url: string): Promise<void> {
    const { root, fedDir, seed, seededIdentities } = this.#o;
    const home = join(root, 'participants', member.name);
    const dataFile = join(home, 'data.jsonl');
    let joined;
    try {
      mkdirSync(home, { recursive: true });
      writeFileSync(dataFile, toJsonl(member.train));
      if (seededIdentities) {
        const identity = generateIdentity(participantIdentitySeed(seed, index));
        await writePrivateFile(
          join(home, IDENTITY_FILE),
          JSON.stringify(serializeIdentity(identity), null, 2) + '\n',
        );
      }
      joined = await joinFederation(createInvite(fedDir, { url, note: member.name }), {
        displayName: member.name,
        rank: member.rank,
        home,
        confirm: () => true,
      });
    } catch (err) {
      // A participant that cannot even be set up (its folder or data not writable) fails the run
      // as one that fails while running does: at once, named.
      throw failedParticipant(member.name, err);
    }
    const uploaded = (round: number, trainLoss: number) => {
      const list = (this.#history.get(round) ?? []).filter((x) => x.name !== member.name);
      list.push({ name: member.name, trainLoss });
      this.#history.set(round, list);
    };
    const run = member.attack
      ? this.#startAdversary(member, member.attack, home, joined!.membership, uploaded)
      : this.#startParticipant(dataFile, home, uploaded);
    this.#runs.push(run.catch((err) => this.#fail(failedParticipant(member.name, err))));
  }

  #startParticipant(dataFile: string, home: string, uploaded: (round: number, loss: number) => void) {
    const { modelDir, threads } = this.#o;
    const p = new Participant();
    p.on('round', (e: RoundHistoryEntry) => {
      if (e.trainLoss !== undefined && e.uploaded) uploaded(e.round, e.trainLoss);
    });
    // Every side of the comparison (federated, alone, pooled) trains on all of a member's examples.
    const options = { modelDir, dataFiles: [dataFile], home, threads, heldOut: false };
    return p.start({ ...options, signal: this.#stop.signal });
  }

  async #startAdversary(
    member: FederationMember,
    attack: Attack,
    home: string,
    membership: Membership,
    uploaded: (round: number, loss: number) => void,
  ): Promise<void> {
    const { modelDir, threads, settings } = this.#o;
    const l = settings.lora!;
    await runAdversary({
      attack,
      identity: await requireIdentity(home),
      membership,
      modelDir,
      records: member.train,
      lora: { rank: l.rank, alpha: l.alpha, dropout: 0, targets: [...l.targets] as LoraConfig['targets'] },
      cutoffLen: settings.training!.cutoffLen,
      threads,
      signal: this.#stop.signal,
      onUploaded: uploaded,
      onRefused: (round, reason) => this.#o.onRefused?.(member.name, round, reason),
    });
  }

  /**
   * Who took part in `round` (uploaded an update), by name. A participant hears its commit
   * acknowledged after the coordinator counted it, so the round may close before the last one's
   * entry is in: this waits (up to 10 s) for `updates` entries.
   */
  async tookPart(round: number, updates: number): Promise<TookPart[]> {
    for (let waited = 0; (this.#history.get(round)?.length ?? 0) < updates && waited < 10_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
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

/** Each closed round handed, in order, to `onRound`; a callback that fails fails `all`. */
class ClosedRounds<Row> {
  readonly #o: LoopbackFederationOptions<Row>;
  readonly #participants: LoopbackParticipants;
  readonly #blobs: BlobStore;
  readonly #rows: Row[] = [];
  #pending = Promise.resolve();

  constructor(o: LoopbackFederationOptions<Row>, participants: LoopbackParticipants) {
    this.#o = o;
    this.#participants = participants;
    this.#blobs = new BlobStore(federationPaths(o.fedDir).blobs);
  }

  closed(round: number, adapterHash: string, updates: number): void {
    this.#pending = this.#pending.then(async () => {
      const tensors = this.#blobs.getF32(adapterHash)!;
      const took = await this.#participants.tookPart(round, updates);
      this.#rows.push(await this.#o.onRound({ round, adapterHash, tensors, updates, took }));
    });
    this.#pending.catch(() => {}); // awaited by `all`; not unhandled in between
  }

  /** The rows of every round closed so far, once their callbacks are done. */
  async all(): Promise<Row[]> {
    await this.#pending;
    return this.#rows;
  }
}
