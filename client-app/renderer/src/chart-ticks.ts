// Which rounds the learning curve (chart.ts) numbers under its x axis. Apart from the chart's
// DOM code, so the rule runs and is tested anywhere.

/** At most about this many round numbers under the x axis. */
const MAX_ROUND_LABELS = 8;

/**
 * The rounds numbered under the x axis: every one while there are few, else every `step`-th from
 * the first, and always the last (in place of a numbered round closer to it than half a step).
 */
export function roundTicks(first: number, final: number): number[] {
  const step = Math.max(1, Math.ceil((final - first + 1) / MAX_ROUND_LABELS));
  const ticks: number[] = [];
  for (let round = first; round <= final; round += step) ticks.push(round);
  if (ticks.at(-1) !== final) {
    if (final - ticks.at(-1)! < step / 2) ticks.pop();
    ticks.push(final);
  }
  return ticks;
}
