// A participant's readiness as it tells the coordinator ('participant:ready'): rounds select only
// among participants who said they can train now. `fedit client run` and the app's participant say
// it after every authentication, once the model and data are loaded (a new connection starts not
// ready); `fedit client join` and the app's Join never do.
import type { ParticipantReadyResult } from '@fedit/shared';
import type { FederationConnection } from './connection.ts';
import { isTransient } from './errors.ts';

/**
 * Tells the coordinator this participant can train now. Undefined when the connection dropped
 * meanwhile: it is said again after the next authentication.
 */
export async function sayReady(
  connection: FederationConnection,
): Promise<ParticipantReadyResult | undefined> {
  try {
    return await connection.request('participant:ready', { ready: true });
  } catch (error) {
    if (isTransient(error)) return undefined;
    throw error;
  }
}

/** What a waiting participant is told: how many are ready and how many a round needs. */
export function waitingWords(ready: ParticipantReadyResult | undefined): string {
  if (!ready) return 'waiting for the next round';
  return `waiting for the next round (${ready.readyParticipants} ready, a round needs ${ready.needed})`;
}
