// Work the backend starts from an event rather than from a call (a round to record, a worker to
// restart): nobody awaits it, so its failure goes to the log, and closing waits for it.

import type { AppLog } from './app-log.ts';

export class BackgroundWork {
  readonly #log: AppLog;
  readonly #pending = new Set<Promise<void>>();

  constructor(log: AppLog) {
    this.#log = log;
  }

  /** Runs `work` on its own; if it fails, the log says `failure` and why. */
  run(work: Promise<void>, failure = 'something went wrong'): void {
    const tracked = work.catch((error: unknown) =>
      this.#log.error(`${failure}: ${(error as Error).message}`),
    );
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }

  /** Resolves once nothing runs (work may start more work). */
  async settled(): Promise<void> {
    while (this.#pending.size) await Promise.all([...this.#pending]);
  }
}
