// The two tables `fedit demo` prints: one row per closed round as the federation runs, then the
// comparison of the base model, each local-only adapter and the federated one.

import type { TaskAccuracy } from './evaluate.ts';
import { TASK_CATEGORIES } from './tasks.ts';

/** One closed round of the demo federation, as its table row shows it. */
export interface DemoRound {
  round: number;
  participants: number;
  /** Who took part (uploaded an update that was counted). */
  took: string[];
  trainLoss: number;
  heldOutLoss: number;
  accuracy: TaskAccuracy;
}

/** A fraction as a percentage, four characters wide. */
export const pct = (x: number) => `${(100 * x).toFixed(0).padStart(3)}%`;

/** The accuracy on each task category, one cell per category. */
const categoryCells = (a: TaskAccuracy) =>
  TASK_CATEGORIES.map((c) => pct(a.byCategory[c]?.accuracy ?? 0).padStart(9)).join(' ');

const categoryHeader = () => TASK_CATEGORIES.map((c) => c.padStart(9)).join(' ');

export function roundTableHeader(): string {
  return 'round  took part     train loss  held-out loss  accuracy  ' + categoryHeader();
}

export function roundTableRow(row: DemoRound): string {
  const who = row.took.map((t) => t.replace('participant-', 'p')).join(',');
  const loss = `${row.trainLoss.toFixed(4).padStart(10)}  ${row.heldOutLoss.toFixed(4).padStart(13)}`;
  return `${String(row.round).padStart(5)}  ${who.padEnd(12)}  ${loss}  ${pct(row.accuracy.overall.accuracy).padStart(8)}  ${categoryCells(row.accuracy)}`;
}

export function comparisonHeader(): string {
  return 'adapter                 overall  ' + categoryHeader();
}

export function comparisonRow(name: string, a: TaskAccuracy): string {
  return `${name.padEnd(22)}  ${pct(a.overall.accuracy).padStart(7)}  ${categoryCells(a)}`;
}
