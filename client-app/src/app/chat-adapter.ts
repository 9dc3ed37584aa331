// Which global adapter the app's chat ("Try it") generates with, and getting it onto this computer.
// Runs in the training worker (it loads models and reads adapters).
//
// The participant downloads a global adapter only for rounds it trains in, and never the one the
// last round produced, so the chat cannot count on the newest being cached. It uses the newest the
// participant can have:
//   - the newest known (from the round history) when it is on disk;
//   - else it is fetched: over the running participant's own connection (a second connection with
//     the same identity would push the participant's off the coordinator), or over a one-off
//     connection when training is not running; the chat waits for it at most FETCH_WAIT_MS;
//   - meanwhile, or when the coordinator cannot be reached (the federation is over and its
//     coordinator gone), or when the newest cannot be made a PEFT folder here, the newest older
//     one on disk (else the base model alone), and the reply says which and why.
// The worker also fetches each new global adapter when its round closes, so a chat rarely waits.

import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCheckpoint } from '@fedit/kernels';
import { writeAdapter, type ContentHash, type Tensor } from '@fedit/shared';
import {
  cacheAdapter,
  downloadAdapter,
  membershipConnection,
  parseFederationSettings,
  readCachedAdapter,
  readMembership,
  requireIdentity,
  type Participant,
} from '../core/federation/index.ts';
import type { KnownAdapter } from './worker-protocol.ts';

/** Where the app writes the global adapter it chats with, as a PEFT folder, inside the home. */
export const CHAT_ADAPTERS_DIR = 'chat-adapters';
/** How long a chat waits for the newest adapter to download before answering with an older one. */
export const FETCH_WAIT_MS = 5_000;
/** After a failed download, chats do not try again (and wait) for this long. */
const RETRY_AFTER_MS = 30_000;
/** How long a one-off connection may take to reach and authenticate with the coordinator. */
const CONNECT_TIMEOUT_MS = 15_000;

export interface ChatAdapterChoice {
  /** The global adapter to chat with, as a PEFT folder; undefined: the base model alone. */
  adapter?: KnownAdapter & { dir: string };
  /** Why the newest known global adapter is not the one used. */
  problem?: string;
}

export interface ChatAdapterRequest {
  home: string;
  federationId?: string;
  modelDir: string;
  /** The federation's global adapters this computer knows of, newest first. */
  adapters: KnownAdapter[];
}

export class ChatAdapters {
  /** Downloads under way, by hash (a chat and the prefetch share one), and whether through a participant. */
  #downloads = new Map<string, { done: Promise<Map<string, Tensor>>; viaParticipant: boolean }>();
  /** Failed one-off connections (the coordinator unreachable), by hash: not retried at once. */
  #failures = new Map<string, { at: number; message: string }>();

  /**
   * Downloads global adapter `hash` into the cache (once; concurrent calls share it), through
   * `participant` when it is running, else over a one-off connection.
   */
  fetch(
    home: string,
    federationId: string,
    hash: string,
    participant?: Participant,
  ): Promise<Map<string, Tensor>> {
    const under = this.#downloads.get(hash);
    // One under way the other way waits for it first: a participant that stopped meanwhile (the
    // federation's last round closed) took its connection with it, and a one-off one tries after.
    if (under && under.viaParticipant === (participant !== undefined)) return under.done;
    const after = under?.done.catch(() => undefined) ?? Promise.resolve(undefined);
    const done = after.then((tensors) =>
      tensors ? tensors : this.#download(home, federationId, hash, participant),
    );
    const entry = { done, viaParticipant: participant !== undefined };
    this.#downloads.set(hash, entry);
    done.then(
      () => this.#failures.delete(hash),
      (error: unknown) => {
        if (!participant) this.#failures.set(hash, { at: Date.now(), message: (error as Error).message });
      },
    );
    const settled = () => {
      if (this.#downloads.get(hash) === entry) this.#downloads.delete(hash);
    };
    done.then(settled, settled);
    return done;
  }

  async #download(
    home: string,
    federationId: string,
    hash: string,
    participant?: Participant,
  ): Promise<Map<string, Tensor>> {
    const cached = await readCachedAdapter(home, hash);
    if (cached) return cached;
    if (participant) {
      const fetched = await participant.fetchGlobalAdapter(hash as ContentHash);
      if (fetched) return fetched;
      // The participant stopped meanwhile (the federation ended): a one-off connection pushes
      // nothing off now.
    }
    const membership = await readMembership(home, federationId);
    if (!membership) throw new Error(`this computer is not in federation ${federationId}`);
    const connection = membershipConnection(membership, await requireIdentity(home), { reconnection: false });
    try {
      connection.open();
      await connection.ready({ timeoutMs: CONNECT_TIMEOUT_MS });
      const downloaded = await downloadAdapter(hash as ContentHash, (h, index) =>
        connection.request('adapter:get', { hash: h, index }),
      );
      await cacheAdapter(home, hash, downloaded.bytes);
      return downloaded.tensors;
    } finally {
      connection.close();
    }
  }

  /** The adapter a chat uses now (see the top of this file); `participant` when training runs. */
  async choose(request: ChatAdapterRequest, participant?: Participant): Promise<ChatAdapterChoice> {
    const [newest, ...older] = request.adapters;
    if (!newest || !request.federationId) return {};
    let problem: string;
    try {
      const ready = await this.#onDisk(request, newest);
      if (ready) return { adapter: ready };
      const fetched = await this.#fetchForChat(request, request.federationId, newest, participant);
      if ('problem' in fetched) problem = fetched.problem;
      else return { adapter: await this.#peftFolder(request, newest, fetched.tensors) };
    } catch (error) {
      // Its tensors are here but could not be made a PEFT folder (the membership gone, the model
      // or the disk failing): an older adapter may still serve, and the base model always does.
      problem = `it could not be made ready for the chat: ${(error as Error).message}`;
    }
    for (const candidate of older) {
      const fallback = await this.#onDisk(request, candidate).catch(() => undefined);
      if (fallback) return { adapter: fallback, problem };
    }
    return { problem };
  }

  /** The tensors of `newest`, fetched within FETCH_WAIT_MS, or why not. */
  async #fetchForChat(
    request: ChatAdapterRequest,
    federationId: string,
    newest: KnownAdapter,
    participant: Participant | undefined,
  ): Promise<{ tensors: Map<string, Tensor> } | { problem: string }> {
    const failed = this.#failures.get(newest.hash);
    const recentFailure =
      !participant && failed && Date.now() - failed.at < RETRY_AFTER_MS && !this.#downloads.has(newest.hash);
    if (failed && recentFailure) return { problem: `it could not be fetched: ${failed.message}` };
    const download = this.fetch(request.home, federationId, newest.hash, participant);
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      download.then(
        (tensors) => ({ tensors }),
        (error: unknown) => ({ error: error as Error }),
      ),
      new Promise<'slow'>((resolve) => (timer = setTimeout(() => resolve('slow'), FETCH_WAIT_MS))),
    ]).finally(() => clearTimeout(timer));
    if (waited === 'slow') {
      return { problem: `it could not be fetched within ${FETCH_WAIT_MS / 1000} s (the app keeps trying)` };
    }
    if ('error' in waited) return { problem: `it could not be fetched: ${waited.error.message}` };
    return waited;
  }

  /** `known` as a PEFT folder, when it or its tensors are on this computer. */
  async #onDisk(
    request: ChatAdapterRequest,
    known: KnownAdapter,
  ): Promise<(KnownAdapter & { dir: string }) | undefined> {
    const dir = chatAdapterDir(request.home, known.hash);
    if (await stat(join(dir, 'adapter_model.safetensors')).catch(() => undefined)) return { ...known, dir };
    const tensors = await readCachedAdapter(request.home, known.hash);
    return tensors && this.#peftFolder(request, known, tensors);
  }

  /** Writes `tensors` as the chat's PEFT folder (the only one kept). */
  async #peftFolder(
    request: ChatAdapterRequest,
    known: KnownAdapter,
    tensors: Map<string, Tensor>,
  ): Promise<KnownAdapter & { dir: string }> {
    const membership = await readMembership(request.home, request.federationId!);
    if (!membership) throw new Error(`this computer is not in federation ${request.federationId}`);
    const settings = parseFederationSettings(membership.config);
    const model = await loadCheckpoint(request.modelDir);
    const dir = chatAdapterDir(request.home, known.hash);
    const parent = join(request.home, CHAT_ADAPTERS_DIR);
    await mkdir(parent, { recursive: true, mode: 0o700 });
    // Only one global adapter is chatted with at a time; older ones stay in the adapter cache.
    for (const name of await readdir(parent)) {
      if (join(parent, name) !== dir) await rm(join(parent, name), { recursive: true, force: true });
    }
    await writeAdapter(
      dir,
      {
        config: {
          rank: settings.lora.rank,
          alpha: settings.lora.alpha,
          dropout: 0,
          targetModules: [...settings.lora.targets],
          baseModelNameOrPath: settings.baseModel.name,
        },
        tensors,
        metadata: {
          baseModelIdentity: model.identity,
          extra: { template: settings.training.template, federation: settings.id },
        },
      },
      { overwrite: true },
    );
    return { ...known, dir };
  }
}

function chatAdapterDir(home: string, hash: string): string {
  return join(home, CHAT_ADAPTERS_DIR, hash.slice('sha256:'.length, 'sha256:'.length + 16));
}
