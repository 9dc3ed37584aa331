// Why the computer is waiting, in words: when the open round closes and what it needs to count.
// The deadline comes from the coordinator's 'round-open' (LiveStatus.roundClosesAt); what a round
// needs from the federation's settings. How many participants are online is not something the
// coordinator tells participants, so the page does not guess it.

import type { AppState } from '../../src/app/api.ts';
import { count, duration } from './words.ts';

/** States in which a round is open and this computer waits for it (or for the others in it). */
const WAITING_ON_ROUND = new Set(['waiting', 'done-round', 'downloading', 'training', 'uploading']);

/** "14:05" in the person's own clock. */
function clockTime(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * "This round closes at 14:05 (in about 12 minutes); it counts once 2 updates arrive." while a round is
 * open; what a round needs while none is; '' when the computer is not taking part (or paused:
 * a paused computer waits for nothing, so the page gives it no time).
 */
export function roundWaitSentence(app: AppState, now = Date.now()): string {
  const { status, federation } = app;
  if (!federation || !WAITING_ON_ROUND.has(status.state)) return '';
  const minUpdates = federation.round.minUpdates;
  const needs =
    minUpdates === undefined ? '' : `it counts once ${count(minUpdates, 'update arrives', 'updates arrive')}`;
  const closesAt = status.roundClosesAt;
  if (closesAt !== undefined && status.round !== undefined) {
    const left = Math.max(0, (closesAt - now) / 1000);
    // "This round": the round's number is already shown beside this line.
    const when = `This round closes at ${clockTime(closesAt)} (${left < 60 ? 'in less than a minute' : `in ${duration(left)}`})`;
    return `${when}${needs ? `; ${needs}` : ''}.`;
  }
  if (status.state !== 'waiting' || !needs) return '';
  return `When the coordinator opens the next round, ${needs}.`;
}
