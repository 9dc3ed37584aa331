// The training worker's supervisor: keeps the worker in line with what the person wants (take
// part, pause, stop) and with the limits they set (only on mains power, only when the computer is
// idle), and restarts it when it dies.
//
//   intent 'running', nothing holds it   start a run (or resume the paused one) -> 'connecting'
//   intent 'paused', or a limit holds    pause the run (the participant stops, keeping its
//                                        checkpoint and pending upload) -> 'paused' by you/power/idle
//   intent 'idle'                        stop the run
//   the run ends by itself               finished / an error: intent 'idle'; stopped: start again
//   the worker dies                      'crashed', a new worker after 1 s, 2 s, 4 s ... (at most
//                                        30 s), which resumes from the participant's files; more
//                                        than MAX_CRASHES in CRASH_WINDOW_MS: 'error', no restart
//
// It says what happens in AppStatusEvents (./live-status.ts) and passes the participant's events
// on unchanged: those of the run taking part now, and round records and warnings of any run.

import type { AppSettings, LiveStatus, ParticipantEvent } from './api.ts';
import type { AppLog } from './app-log.ts';
import type { BackgroundWork } from './background.ts';
import type { AppStatusEvent } from './live-status.ts';
import type { SystemMonitor } from './system-monitor.ts';
import type { FinalAdapter } from '../core/federation/events.ts';
import type { FromWorker, RunOptions, WorkerLink } from './worker-protocol.ts';

/** Crashes within CRASH_WINDOW_MS after which the supervisor stops restarting the worker. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 10 * 60_000;
/** How long stopping waits for the participant to let go of its files. */
const STOP_TIMEOUT_MS = 10_000;
/** Events that are true whichever run saw them (a replaced run's round still happened). */
const OF_ANY_RUN: ReadonlySet<ParticipantEvent['type']> = new Set(['round', 'warning']);

/** What the person wants the worker to do. */
export type Intent = 'idle' | 'running' | 'paused';

/** What the supervisor needs of the backend. */
export interface SupervisorHost {
  /** What the participant runs with now, or why it cannot run, in words. */
  runOptions(): Promise<RunOptions | string>;
  limits(): Pick<AppSettings, 'onlyWhenPluggedIn' | 'onlyWhenIdle'>;
  /** The live status now (a crash of a worker that ran nothing restores it). */
  status(): LiveStatus;
  /** How many rounds the federation has (for the status once its last one closed). */
  rounds(): number | undefined;
  /** The federation has ended, and its final adapter is kept here; returns the status line. */
  onFederationEnded(final: FinalAdapter): Promise<string>;
  onStatus(event: AppStatusEvent): void;
  onParticipant(event: ParticipantEvent): void;
  /** The intent may have changed by itself, or the worker's state did: save and show it. */
  onChanged(): void;
}

export interface SupervisorOptions {
  worker: WorkerLink;
  monitor: SystemMonitor;
  log: AppLog;
  background: BackgroundWork;
  /** How often the limits are checked, ms (default 5000). */
  limitPollMs?: number;
  /** First wait before restarting a crashed worker, ms (doubles per crash; default 1000). */
  restartDelayMs?: number;
}

export class WorkerSupervisor {
  readonly #host: SupervisorHost;
  readonly #options: SupervisorOptions;
  readonly #worker: WorkerLink;
  readonly #log: AppLog;
  #intent: Intent = 'idle';
  /** A limit holding training back now. */
  #held: 'power' | 'idle' | undefined;
  /** What the worker was last told: running a run, holding it paused, or nothing. */
  #run: { id: number; key: string; state: 'running' | 'paused' } | undefined;
  #runCounter = 0;
  #crashes: number[] = [];
  /** Who waits for a run's 'ended' (leaving waits for the participant to let go of its files). */
  #endedWaiters = new Map<number, () => void>();
  #restartTimer: NodeJS.Timeout | undefined;
  #limitTimer: NodeJS.Timeout | undefined;
  #unsubscribeMonitor: (() => void) | undefined;
  #closed = false;

  constructor(host: SupervisorHost, options: SupervisorOptions) {
    this.#host = host;
    this.#options = options;
    this.#worker = options.worker;
    this.#log = options.log;
    this.#worker.on('message', (message) => this.#onMessage(message));
    this.#worker.on('crash', (exit) => this.#onCrash(exit));
    this.#unsubscribeMonitor = options.monitor.subscribe?.(() => this.#checkLimits());
  }

  get intent(): Intent {
    return this.#intent;
  }

  /** Takes part (as far as the limits let it). */
  async start(): Promise<void> {
    this.#intent = 'running';
    await this.refresh();
  }

  async pause(): Promise<void> {
    this.#intent = 'paused';
    await this.#apply();
  }

  /** Stops taking part; resolves once the participant has let go of its files. */
  async stop(): Promise<void> {
    this.#intent = 'idle';
    await this.#stopWorker();
  }

  /** Acts on changed settings: the limits, and a run whose options changed starts again. */
  async refresh(): Promise<void> {
    this.#checkLimits(false);
    await this.#apply();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#limitTimer);
    this.#unsubscribeMonitor?.();
    await this.#worker.dispose();
    this.#settleEnded();
  }

  /** Brings the worker in line with the intent and the limits. */
  async #apply(): Promise<void> {
    if (this.#closed || this.#restartTimer) return;
    if (this.#intent === 'idle') {
      void this.#stopWorker();
      return;
    }
    if (this.#intent === 'paused' || this.#held) {
      if (this.#run?.state === 'running') {
        this.#run.state = 'paused';
        this.#worker.pause();
      }
      this.#host.onStatus({ type: 'app:paused', by: this.#intent === 'paused' ? 'you' : this.#held! });
      this.#ensureLimitPolling();
      return;
    }
    const run = await this.#host.runOptions();
    if (typeof run === 'string') {
      this.#intent = 'idle';
      this.#host.onStatus({ type: 'app:stopped', state: 'error', message: run });
      return;
    }
    const key = JSON.stringify(run);
    const current = this.#run;
    if (current?.key === key && current.state === 'running') return;
    if (current?.key === key) {
      current.state = 'running';
      this.#worker.resume();
    } else {
      const id = ++this.#runCounter;
      this.#run = { id, key, state: 'running' };
      this.#worker.start(run, id);
    }
    this.#host.onStatus({ type: 'app:starting' });
    this.#ensureLimitPolling();
  }

  /** Stops the participant; resolves once it has (its 'ended', a crash, or after STOP_TIMEOUT_MS). */
  #stopWorker(): Promise<void> {
    const run = this.#run;
    this.#run = undefined;
    let stopped = Promise.resolve();
    // A paused run has already let go (its participant stopped when it paused).
    if (run?.state === 'running') {
      stopped = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STOP_TIMEOUT_MS);
        this.#endedWaiters.set(run.id, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (run) this.#worker.stop();
    clearInterval(this.#limitTimer);
    this.#limitTimer = undefined;
    return stopped;
  }

  #ensureLimitPolling(): void {
    if (this.#limitTimer) return;
    this.#limitTimer = setInterval(() => this.#checkLimits(), this.#options.limitPollMs ?? 5000);
    this.#limitTimer.unref();
  }

  /** Re-reads power and idle state; `apply` (default) acts on a change. */
  #checkLimits(apply = true): void {
    let held: 'power' | 'idle' | undefined;
    const limits = this.#host.limits();
    try {
      if (limits.onlyWhenPluggedIn && this.#options.monitor.onBattery()) held = 'power';
      else if (limits.onlyWhenIdle && !this.#options.monitor.isIdle()) held = 'idle';
    } catch (error) {
      this.#log.warn(`cannot read the power or idle state: ${(error as Error).message}`);
    }
    if (held === this.#held) return;
    this.#held = held;
    this.#log.info(held ? `limit: holding training back (${held})` : 'limits: nothing holds training back');
    if (apply) this.#options.background.run(this.#apply().then(() => this.#host.onChanged()));
  }

  #onMessage(message: FromWorker): void {
    if (this.#closed) return;
    switch (message.type) {
      case 'ready':
        return this.#log.info(`training worker started (pid ${message.pid})`);
      case 'warning':
        return this.#log.warn(message.message);
      case 'chat-model':
        return this.#log.info(
          message.loaded ? `chat model loaded (${message.why})` : `chat model released: ${message.why}`,
        );
      case 'participant': {
        const run = this.#run;
        const current = message.runId === run?.id && run.state === 'running';
        if (!current && !OF_ANY_RUN.has(message.event.type)) return;
        this.#logParticipant(message.event);
        this.#host.onParticipant(message.event);
        return;
      }
      case 'ended':
        if (message.reason === 'paused') return;
        this.#endedWaiters.get(message.runId)?.();
        this.#endedWaiters.delete(message.runId);
        if (message.runId === this.#run?.id) this.#onEnded(message);
        return;
    }
  }

  /** What the participant says that people may want to read later. */
  #logParticipant(event: ParticipantEvent): void {
    if (event.type === 'warning') this.#log.warn(event.data);
    if (event.type === 'round-open') {
      const { round, selected } = event.data;
      this.#log.info(`round ${round} opened; this computer ${selected ? 'is selected' : 'is not selected'}`);
    }
  }

  #onEnded(message: Extract<FromWorker, { type: 'ended' }>): void {
    this.#run = undefined;
    if (message.error) {
      this.#intent = 'idle';
      this.#log.error(`training stopped: ${message.error.message} [${message.error.code}]`);
      this.#host.onStatus({ type: 'app:stopped', state: 'error', message: message.error.message });
    } else if (message.reason === 'finished' && message.finalAdapter) {
      this.#intent = 'idle';
      const final = message.finalAdapter;
      this.#options.background.run(
        this.#host
          .onFederationEnded(final)
          .then((line) => this.#host.onStatus({ type: 'app:stopped', state: 'finished', message: line })),
        'cannot record the end of the federation',
      );
    } else if (message.reason === 'finished' || message.reason === 'max-rounds') {
      this.#intent = 'idle';
      const rounds = this.#host.rounds();
      const message = `all ${rounds === undefined ? '' : `${rounds} `}rounds are done; thank you for taking part`;
      this.#host.onStatus({ type: 'app:stopped', state: 'finished', message });
    } else if (this.#intent === 'idle') {
      this.#host.onStatus({ type: 'app:stopped', state: 'idle' });
    } else if (this.#intent === 'running') {
      // Stopped without being asked (and without an error): start again.
      this.#options.background.run(this.#apply());
    }
    this.#host.onChanged();
  }

  #onCrash(exit: { code: number | null; signal?: string }): void {
    if (this.#closed) return;
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const now = Date.now();
    this.#crashes = [...this.#crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    this.#log.error(`the training worker ${how}`);
    const wasRunning = this.#run !== undefined;
    const { state, message } = this.#host.status();
    this.#run = undefined;
    this.#settleEnded();
    if (this.#crashes.length > MAX_CRASHES) {
      this.#intent = 'idle';
      this.#host.onStatus({
        type: 'app:stopped',
        state: 'error',
        message: `the training worker keeps stopping (${this.#crashes.length} times in ${CRASH_WINDOW_MS / 60_000} minutes; last: it ${how}); see the logs`,
      });
      this.#host.onChanged();
      return;
    }
    const resuming = wasRunning && this.#intent !== 'idle';
    this.#host.onStatus({
      type: 'app:stopped',
      state: 'crashed',
      message: `the training worker ${how}; ${resuming ? 'restarting it and resuming where it stopped' : 'it starts again when needed'}`,
    });
    this.#host.onChanged();
    const delay = Math.min(30_000, (this.#options.restartDelayMs ?? 1000) * 2 ** (this.#crashes.length - 1));
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#log.info('restarting the training worker');
      // Nothing was running (a chat or a check crashed): back to how things were.
      if (this.#intent === 'idle') {
        this.#host.onStatus(
          state === 'crashed'
            ? { type: 'app:stopped', state: 'idle' }
            : { type: 'app:stopped', state, message },
        );
      }
      this.#options.background.run(this.#apply().then(() => this.#host.onChanged()));
    }, delay);
  }

  /** A dead worker ends no run: release whoever waits. */
  #settleEnded(): void {
    for (const resolve of this.#endedWaiters.values()) resolve();
    this.#endedWaiters.clear();
  }
}
