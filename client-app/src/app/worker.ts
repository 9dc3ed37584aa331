// The training worker: takes part in the federation's rounds with the core's Participant, and runs
// the backend's heavy jobs (model checks, data validation, chat), speaking ./worker-protocol.ts
// over any postMessage-like port. ./training-worker.ts is the process entry that connects it to
// Electron's utilityProcess or a Node child process; ./worker-link.ts can also host it in-process.

import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCheckpoint, loadTokenizer } from '@fedit/kernels';
import { FeditError, writeAdapter } from '@fedit/shared';
import { openChatSession, type ChatSession } from '../core/chat.ts';
import { prepareDataset, previewExample } from '../core/data/index.ts';
import {
  FederationConnection,
  Participant,
  cacheAdapter,
  downloadAdapter,
  parseFederationSettings,
  readCachedAdapter,
  readMembership,
  requireIdentity,
} from '../core/federation/index.ts';
import type { FromWorker, Job, JobResults, RunOptions, WireError, WorkerPort } from './worker-protocol.ts';

/** Where the app writes the global adapters it chats with, as PEFT folders, inside the home. */
export const CHAT_ADAPTERS_DIR = 'chat-adapters';

export function toWireError(error: unknown): WireError {
  if (error instanceof FeditError) return { code: error.code, message: error.message };
  const system = error as NodeJS.ErrnoException;
  if (typeof system?.code === 'string' && typeof system.message === 'string') {
    return { code: system.code, message: system.message };
  }
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

interface Running {
  run: RunOptions;
  runId: number;
  controller: AbortController;
  /** Why it is being stopped, once it is. */
  stopping?: 'pause' | 'stop';
  done: Promise<void>;
}

/** Hosts the worker on `port` until the process ends. */
export function runTrainingWorker(port: WorkerPort): void {
  const post = (message: FromWorker) => port.postMessage(message);
  let running: Running | undefined;
  /** A paused run, kept for 'resume'. */
  let paused: { run: RunOptions; runId: number } | undefined;
  /** Start and stop requests are handled one after another. */
  let queue: Promise<void> = Promise.resolve();
  const chats = new ChatSessions();

  const halt = async (why: 'pause' | 'stop') => {
    const current = running;
    if (!current) return;
    current.stopping = why;
    current.controller.abort();
    await current.done;
  };

  const begin = (run: RunOptions, runId: number) => {
    const controller = new AbortController();
    const participant = new Participant();
    participant.on('status', (status) => post({ type: 'status', runId, status }));
    participant.on('progress', (progress) => post({ type: 'progress', runId, progress }));
    participant.on('report', (report) => post({ type: 'report', runId, report }));
    participant.on('round-open', (open) => post({ type: 'round-open', runId, ...open }));
    participant.on('round', (entry) => post({ type: 'round', runId, entry }));
    participant.on('warning', (message) => post({ type: 'warning', runId, message }));
    const current: Running = { run, runId, controller, done: Promise.resolve() };
    current.done = participant
      .start({
        home: run.home,
        federationId: run.federationId,
        modelDir: run.modelDir,
        dataFiles: run.dataFiles,
        provider: run.provider,
        threads: run.threads > 0 ? run.threads : undefined,
        signal: controller.signal,
      })
      .then(
        (result) => {
          const reason = current.stopping === 'pause' ? 'paused' : result.reason;
          post({ type: 'ended', runId, reason });
        },
        (error: unknown) => post({ type: 'ended', runId, reason: 'stopped', error: toWireError(error) }),
      )
      .finally(() => {
        if (running === current) running = undefined;
      });
    running = current;
  };

  const serially = (work: () => Promise<void> | void) => {
    queue = queue
      .then(work)
      .catch((error: unknown) => post({ type: 'warning', message: toWireError(error).message }));
  };

  port.onMessage((message) => {
    switch (message.type) {
      case 'start':
        return serially(async () => {
          await halt('stop');
          paused = undefined;
          begin(message.run, message.runId);
        });
      case 'pause':
        return serially(async () => {
          if (!running) return;
          paused = { run: running.run, runId: running.runId };
          await halt('pause');
        });
      case 'resume':
        return serially(() => {
          if (running || !paused) return;
          const { run, runId } = paused;
          paused = undefined;
          begin(run, runId);
        });
      case 'stop':
        return serially(async () => {
          paused = undefined;
          await halt('stop');
        });
      case 'quit':
        return serially(async () => {
          paused = undefined;
          await halt('stop');
          port.close();
        });
      case 'job':
        void runJob(message.job, (text) => post({ type: 'chat-text', id: message.id, text }), {
          chats,
          participantRunning: () => running !== undefined,
        }).then(
          (result) => post({ type: 'job-done', id: message.id, result }),
          (error: unknown) => post({ type: 'job-failed', id: message.id, error: toWireError(error) }),
        );
        return;
    }
  });
  post({ type: 'ready', pid: process.pid });
}

// ---- jobs --------------------------------------------------------------------------------------

interface JobContext {
  chats: ChatSessions;
  participantRunning(): boolean;
}

async function runJob(
  job: Job,
  onText: (text: string) => void,
  context: JobContext,
): Promise<JobResults[Job['kind']]> {
  switch (job.kind) {
    case 'check-model': {
      const model = await loadCheckpoint(job.dir);
      return {
        identity: model.identity,
        modelType: model.config.modelType,
        layers: model.config.numLayers,
        hiddenSize: model.config.hiddenSize,
      } satisfies JobResults['check-model'];
    }
    case 'prepare-data': {
      if (!job.tokens) {
        const prepared = await prepareDataset(job.files);
        return { report: prepared.report, previews: [] } satisfies JobResults['prepare-data'];
      }
      const { modelDir, ...build } = job.tokens;
      const tokenizer = await loadTokenizer(modelDir);
      const prepared = await prepareDataset(job.files, { tokens: { tokenizer, ...build } });
      const previews = (prepared.rows?.train ?? [])
        .slice(0, job.previews)
        .map((row) => previewExample(row, tokenizer));
      return { report: prepared.report, previews } satisfies JobResults['prepare-data'];
    }
    case 'chat':
      // One reply at a time: a generator holds one key/value cache.
      return context.chats.serially(() => chat(job, onText, context));
  }
}

/**
 * The global adapter to chat with: `adapterHash` from the cache, or downloaded when the
 * participant is not connected (a second authenticated connection would push the participant's
 * own off the coordinator). Undefined: chat with the base model alone.
 */
async function chatAdapter(
  job: Extract<Job, { kind: 'chat' }>,
  participantRunning: boolean,
): Promise<{ hash: string; dir: string } | undefined> {
  const hash = job.adapterHash;
  if (!hash || !job.federationId) return undefined;
  const dir = join(job.home, CHAT_ADAPTERS_DIR, hash.slice('sha256:'.length, 'sha256:'.length + 16));
  if (await stat(join(dir, 'adapter_model.safetensors')).catch(() => undefined)) return { hash, dir };
  const membership = await readMembership(job.home, job.federationId);
  if (!membership) return undefined;
  let tensors = await readCachedAdapter(job.home, hash);
  if (!tensors) {
    if (participantRunning) return undefined;
    const connection = new FederationConnection({
      url: membership.url,
      federation: membership.federation,
      coordinator: membership.coordinator,
      identity: await requireIdentity(job.home),
      auth: { kind: 'prove' },
      reconnection: false,
    });
    try {
      connection.open();
      await connection.ready({ timeoutMs: 15_000 });
      const downloaded = await downloadAdapter(hash as `sha256:${string}`, (h, index) =>
        connection.request('adapter:get', { hash: h, index }),
      );
      await cacheAdapter(job.home, hash, downloaded.bytes);
      tensors = downloaded.tensors;
    } finally {
      connection.close();
    }
  }
  const settings = parseFederationSettings(membership.config);
  const model = await loadCheckpoint(job.modelDir);
  const parent = join(job.home, CHAT_ADAPTERS_DIR);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  // Only the newest global adapter is worth keeping for chat.
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
  return { hash, dir };
}

async function chat(
  job: Extract<Job, { kind: 'chat' }>,
  onText: (text: string) => void,
  context: JobContext,
): Promise<JobResults['chat']> {
  const adapter = await chatAdapter(job, context.participantRunning());
  const session = await context.chats.open({
    modelDir: job.modelDir,
    adapterDir: adapter?.dir,
    provider: job.provider,
    threads: job.threads > 0 ? job.threads : undefined,
  });
  let text = '';
  for await (const piece of session.reply(job.prompt, { maxNewTokens: job.maxNewTokens, temperature: 0 })) {
    text += piece;
    onText(piece);
  }
  return { text, adapterHash: adapter?.hash };
}

/** One open chat session at a time, reused while the model, adapter and device stay the same. */
class ChatSessions {
  #key = '';
  #session: Promise<ChatSession> | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  serially<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(work, work);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async open(options: Parameters<typeof openChatSession>[0]): Promise<ChatSession> {
    const key = JSON.stringify([options.modelDir, options.adapterDir, options.provider, options.threads]);
    if (this.#session && key === this.#key) {
      try {
        return await this.#session;
      } catch {
        this.#session = undefined; // failed to open last time: try again
      }
    }
    const previous = this.#session;
    this.#key = key;
    this.#session = openChatSession(options);
    await previous?.then((s) => s.close()).catch(() => undefined);
    return this.#session;
  }
}
