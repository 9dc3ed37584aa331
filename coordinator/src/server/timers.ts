// Timers that may run longer than setTimeout allows. Node keeps a timer's delay in a signed 32-bit
// integer of milliseconds: a delay above 2^31 - 1 ms (24.8 days) is replaced by 1 ms, with only a
// TimeoutOverflowWarning, so a round with a month-long deadline closed at once. Every timer of the
// coordinator whose delay comes from configuration goes through setLongTimeout, which waits in
// steps of at most MAX_TIMEOUT_MS and re-reads the clock after each step, so the callback runs at
// `delayMs` after the call (not earlier) whatever the delay.

/** The longest delay setTimeout honours: 2^31 - 1 ms. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A pending long timer; cancel() is idempotent and safe after it fired. */
export interface LongTimer {
  cancel(): void;
}

/**
 * Calls `run` once `delayMs` milliseconds have passed (a negative or non-finite delay: at once on
 * the next turn, as setTimeout does). `stepMs` is the longest single wait; tests lower it.
 */
export function setLongTimeout(run: () => void, delayMs: number, stepMs = MAX_TIMEOUT_MS): LongTimer {
  const step = Math.min(Math.max(1, Math.floor(stepMs)), MAX_TIMEOUT_MS);
  const due = Date.now() + (Number.isFinite(delayMs) ? Math.max(0, delayMs) : 0);
  let timer: NodeJS.Timeout | undefined;
  const wait = (): void => {
    const left = due - Date.now();
    if (left <= 0) {
      timer = undefined;
      run();
      return;
    }
    timer = setTimeout(wait, Math.min(left, step));
  };
  timer = setTimeout(wait, Math.min(Math.max(0, due - Date.now()), step));
  return {
    cancel() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
