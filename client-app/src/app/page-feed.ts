// What the page hears from the backend (AppEvent, ./api.ts), and the live status it keeps.
//
// The live status is a fold (./live-status.ts). A participant's event goes to the page as it is,
// and the page folds it the same way; a change of the backend's own goes out as the status it
// leads to. Either way the page's status and the backend's are the same fold of the same events.

import type { AppEvent, LiveStatus, ParticipantEvent } from './api.ts';
import type { AppLog } from './app-log.ts';
import { initialLiveStatus, reduceLiveStatus, type AppStatusEvent } from './live-status.ts';

export class PageFeed {
  readonly #log: AppLog;
  readonly #listeners = new Set<(event: AppEvent) => void>();
  #status: LiveStatus = initialLiveStatus();

  constructor(log: AppLog) {
    this.#log = log;
  }

  /** The live status now (not to be changed: the next fold replaces it). */
  get status(): LiveStatus {
    return this.#status;
  }

  /** Subscribes to events; returns an unsubscribe function. */
  on(listener: (event: AppEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tells every listener; one that throws is logged and the others still hear it. */
  emit(event: AppEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#log.warn(`an event listener failed: ${(error as Error).message}`);
      }
    }
  }

  /** Folds a participant's event into the status, and passes it on as it is. */
  participant(event: ParticipantEvent): void {
    this.#fold(event);
    this.emit({ type: 'participant', event });
  }

  /** Folds a change of the backend's own into the status, and sends the status when it changed. */
  app(event: AppStatusEvent): void {
    const before = this.#status;
    this.#fold(event);
    if (this.#status !== before) this.emit({ type: 'status', status: structuredClone(this.#status) });
  }

  close(): void {
    this.#listeners.clear();
  }

  #fold(event: ParticipantEvent | AppStatusEvent): void {
    const before = this.#status;
    this.#status = reduceLiveStatus(before, event);
    const { state, message, pausedBy } = this.#status;
    if (state !== before.state) {
      const why = message ?? (pausedBy && `by ${pausedBy}`);
      this.#log.info(`status ${state}${why ? `: ${why}` : ''}`);
    }
  }
}
