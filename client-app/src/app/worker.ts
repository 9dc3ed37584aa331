// The training worker: takes part in the federation's rounds with the core's Participant, and runs
// the backend's heavy jobs (model checks, data validation, chat), speaking ./worker-protocol.ts
// over any postMessage-like port. ./training-worker.ts is the process entry that connects it to
// Electron's utilityProcess or a Node child process; ./worker-link.ts can also host it in-process.

import { loadCheckpoint, loadTokenizer } from '@fedit/kernels';
import { FeditError, parseIdentity } from '@fedit/shared';
import { openChatSession, type ChatSession } from '../core/chat.ts';
import { prepareDataset, previewExample } from '../core/data/index.ts';
import { unlockIdentity } from '../core/federation/identity-file.ts';
import { Participant, type ParticipantEvents } from '../core/federation/index.ts';
import type { ParticipantEvent } from './api.ts';
import { ChatAdapters } from './chat-adapter.ts';
import { measureDevice } from './device-measure.ts';
import {
  PARTICIPANT_EVENT_NAMES,
  type FromWorker,
  type Job,
  type JobResults,
  type RunOptions,
  type WorkerError,
  type WorkerPort,
} from './worker-protocol.ts';

export { CHAT_ADAPTERS_DIR } from './chat-adapter.ts';
/** A chat model unused this long is closed: it holds the model's weights and a key/value cache. */
export const CHAT_IDLE_MS = 5 * 60_000;

export function toWorkerError(error: unknown): WorkerError {
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
  participant: Participant;
  controller: AbortController;
  /** Why it is being stopped, once it is. */
  stopping?: 'pause' | 'stop';
  done: Promise<void>;
}

export interface TrainingWorkerOptions {
  /** Close an unused chat model after this long, ms (default CHAT_IDLE_MS). */
  chatIdleMs?: number;
}

/** Hosts the worker on `port` until the process ends. */
export function runTrainingWorker(port: WorkerPort, options: TrainingWorkerOptions = {}): void {
  const post = (message: FromWorker) => port.postMessage(message);
  let running: Running | undefined;
  /** A paused run, kept for 'resume'. */
  let paused: { run: RunOptions; runId: number } | undefined;
  /** Start and stop requests are handled one after another. */
  let queue: Promise<void> = Promise.resolve();
  const chats = new ChatSessions(options.chatIdleMs ?? CHAT_IDLE_MS, (loaded, why) =>
    post({ type: 'chat-model', loaded, why }),
  );
  const chatAdapters = new ChatAdapters();
  const halt = async (why: 'pause' | 'stop') => {
    const current = running;
    if (!current) return;
    current.stopping = why;
    current.controller.abort();
    await current.done;
  };

  const begin = (run: RunOptions, runId: number) => {
    unlockIdentity(run.identity && parseIdentity(run.identity));
    const current = takePart(run, runId, post, chatAdapters);
    current.done = current.done.finally(() => {
      if (running === current) running = undefined;
    });
    running = current;
  };

  const serially = (work: () => Promise<void> | void) => {
    queue = queue
      .then(work)
      .catch((error: unknown) => post({ type: 'warning', message: toWorkerError(error).message }));
  };

  port.onMessage((message) => {
    switch (message.type) {
      case 'start':
        // Training needs the memory the chat model holds; a chat opens it again when asked.
        void chats.release('training started');
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
        void chats.release('training resumed');
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
          await chats.release('the app is closing');
          port.close();
        });
      case 'job':
        void runJob(message.job, (text) => post({ type: 'chat-text', id: message.id, text }), {
          chats,
          chatAdapters,
          participant: () => running?.participant,
        }).then(
          (result) => post({ type: 'job-done', id: message.id, result }),
          (error: unknown) => post({ type: 'job-failed', id: message.id, error: toWorkerError(error) }),
        );
        return;
    }
  });
  post({ type: 'ready', pid: process.pid });
}

/**
 * Starts the participant on `run`, posting its events unchanged and, at the end, why it ended. The
 * global adapters it sees close are fetched for chat at once, over its connection.
 */
function takePart(
  run: RunOptions,
  runId: number,
  post: (message: FromWorker) => void,
  chatAdapters: ChatAdapters,
): Running {
  const controller = new AbortController();
  const participant = new Participant();
  for (const name of PARTICIPANT_EVENT_NAMES) {
    participant.on(name, (data: ParticipantEvents[typeof name][0]) =>
      post({ type: 'participant', runId, event: { type: name, data } as ParticipantEvent }),
    );
  }
  // Only an adapter this run saw itself is fetched when it ends (an earlier run may have been in
  // another federation).
  let newestSeen: string | undefined;
  participant.on('round', (entry) => {
    if (entry.outcome !== 'aggregated' || !entry.adapterHash) return;
    newestSeen = entry.adapterHash;
    // The chat tries again, and says so, if this fails.
    chatAdapters.fetch(run.home, run.federationId, newestSeen, participant).catch(() => undefined);
  });
  const current: Running = { run, runId, participant, controller, done: Promise.resolve() };
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
        post({
          type: 'ended',
          runId,
          reason,
          ...(result.finalAdapter && { finalAdapter: { ...result.finalAdapter } }),
        });
        // The last round's adapter, which the participant's connection may have closed on: fetched
        // while the coordinator is surely still there, for chats after the federation is over.
        if ((reason === 'finished' || reason === 'max-rounds') && newestSeen) {
          chatAdapters.fetch(run.home, run.federationId, newestSeen).catch(() => undefined);
        }
      },
      (error: unknown) => post({ type: 'ended', runId, reason: 'stopped', error: toWorkerError(error) }),
    );
  return current;
}

// ---- jobs --------------------------------------------------------------------------------------

interface JobContext {
  chats: ChatSessions;
  chatAdapters: ChatAdapters;
  /** The participant taking part now, if one is. */
  participant(): Participant | undefined;
}

async function runJob(
  job: Job,
  onText: (text: string) => void,
  context: JobContext,
): Promise<JobResults[Job['kind']]> {
  switch (job.kind) {
    case 'check-model': {
      const model = await loadCheckpoint(job.dir, { cacheDir: job.cacheDir });
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
    case 'measure-device':
      return measureDevice(job);
    case 'chat':
      if (job.identity) unlockIdentity(parseIdentity(job.identity));
      // One reply at a time: a generator holds one key/value cache.
      return context.chats.reply(() => chat(job, onText, context));
  }
}

async function chat(
  job: Extract<Job, { kind: 'chat' }>,
  onText: (text: string) => void,
  context: JobContext,
): Promise<JobResults['chat']> {
  const choice = await context.chatAdapters.choose(job, context.participant());
  const session = await context.chats.open({
    modelDir: job.modelDir,
    adapterDir: choice.adapter?.dir,
    provider: job.provider,
    threads: job.threads > 0 ? job.threads : undefined,
  });
  let text = '';
  try {
    for await (const piece of session.reply(job.prompt, { maxNewTokens: job.maxNewTokens, temperature: 0 })) {
      text += piece;
      onText(piece);
    }
  } finally {
    // Beside training, the chat model's memory is given back at once; otherwise kept a while for
    // the next message.
    if (context.participant()) void context.chats.release('training is running');
    else context.chats.idle();
  }
  const adapter = choice.adapter && { round: choice.adapter.round, hash: choice.adapter.hash };
  return { text, adapter, problem: choice.problem };
}

/**
 * One open chat session at a time, reused while the model, adapter and device stay the same, and
 * closed when training starts or after `idleMs` unused: it holds a copy of the model's weights.
 */
export class ChatSessions {
  #key = '';
  #session: Promise<ChatSession> | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #idleTimer: NodeJS.Timeout | undefined;
  /** Replies asked for so far: an idle release made moot by a later one is skipped. */
  #replies = 0;
  readonly #idleMs: number;
  readonly #onChange: (loaded: boolean, why: string) => void;

  /** `onChange` hears when a chat model is loaded or released, and why. */
  constructor(idleMs: number, onChange: (loaded: boolean, why: string) => void = () => undefined) {
    this.#idleMs = idleMs;
    this.#onChange = onChange;
  }

  /** Whether a chat model is loaded now. */
  get loaded(): boolean {
    return this.#session !== undefined;
  }

  serially<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(work, work);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Runs one reply after those before it. From the moment it is asked for, the model is in use:
   * the reply may wait for an adapter before it opens the model, and an idle release due in that
   * time would otherwise unload the model right after the reply that used it.
   */
  reply<T>(work: () => Promise<T>): Promise<T> {
    this.#replies++;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    return this.serially(work);
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
    const session = await this.#session;
    this.#onChange(true, options.adapterDir ? 'with the global adapter' : 'the base model alone');
    return session;
  }

  /** A reply is done: the model is released if no other is asked for within the idle time. */
  idle(): void {
    clearTimeout(this.#idleTimer);
    const replies = this.#replies;
    this.#idleTimer = setTimeout(
      // Checked again when the release's turn comes: a reply asked for after the timer fired runs
      // first if it was queued first, and the model it used is not unused.
      () =>
        void this.release(`unused for ${Math.round(this.#idleMs / 1000)} s`, () => this.#replies === replies),
      this.#idleMs,
    );
    this.#idleTimer.unref();
  }

  /** Closes the chat model (after the reply being generated, if one is), if `stillDue` says so then. */
  release(why: string, stillDue: () => boolean = () => true): Promise<void> {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    return this.serially(async () => {
      const session = this.#session;
      if (!session || !stillDue()) return;
      this.#session = undefined;
      this.#key = '';
      await session.then((s) => s.close()).catch(() => undefined);
      this.#onChange(false, why);
    });
  }
}
