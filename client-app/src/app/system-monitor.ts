// What the training limits ("only when plugged in", "only when idle") look at. The desktop app
// answers from Electron's powerMonitor; the development shell and the tests inject their own.

export interface SystemMonitor {
  /** True while the computer runs on battery. */
  onBattery(): boolean;
  /** True while nobody is using the computer (no keyboard or mouse input for a while, or locked). */
  isIdle(): boolean;
  /** Calls `listener` when either answer may have changed; returns an unsubscribe function. The
   * backend also polls, so a monitor without change events works too. */
  subscribe?(listener: () => void): () => void;
}

/**
 * The development shell's monitor: always on mains power and always idle, so the limits never hold
 * training back. This is what a headless machine (a server, a CI runner, a container) truthfully
 * is: it has no battery and nobody at a keyboard whose work training would slow down.
 */
export const HEADLESS_MONITOR: SystemMonitor = {
  onBattery: () => false,
  isIdle: () => true,
};

/** A monitor whose answers a test sets. */
export class ManualMonitor implements SystemMonitor {
  #battery = false;
  #idle = true;
  #listeners = new Set<() => void>();

  onBattery(): boolean {
    return this.#battery;
  }
  isIdle(): boolean {
    return this.#idle;
  }
  set(state: { onBattery?: boolean; idle?: boolean }): void {
    if (state.onBattery !== undefined) this.#battery = state.onBattery;
    if (state.idle !== undefined) this.#idle = state.idle;
    for (const listener of this.#listeners) listener();
  }
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
