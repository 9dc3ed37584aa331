// A federation that already ended, seen by `fedit client run` (Participant.start) before anything
// heavy is loaded: one short connection asks the coordinator, which says 'federation:finished' on
// authentication; if it does, the final adapter is fetched into the adapter cache and recorded as
// the result of the round that made it (results.ts, so `fedit client export` finds it), and the
// base model and the data are never loaded. A coordinator that does not answer within
// PREFLIGHT_TIMEOUT_MS, or a federation still running, leaves the ordinary start to go on.
import type { FederationFinished } from '@fedit/shared';
import { checkNewestAnnounced } from './announced.ts';
import { membershipConnection } from './join.ts';
import type { FinalAdapter } from './events.ts';
import { recordRoundResult } from './results.ts';
import { keepFinalAdapter } from './round-io.ts';
import type { ParticipantOptions } from './session.ts';
import { adapterCachePath, requireIdentity, resolveHome, selectMembership } from './store.ts';

/** How long the pre-flight waits for the coordinator before the ordinary start goes on. */
export const PREFLIGHT_TIMEOUT_MS = 3000;

/**
 * The federation's final adapter, fetched without loading the model, when the coordinator says the
 * federation is over; undefined when it runs, or could not be asked now.
 */
export async function fetchFinishedFederation(
  options: ParticipantOptions,
  warn: (message: string) => void,
): Promise<FinalAdapter | undefined> {
  const home = resolveHome(options.home);
  const identity = await requireIdentity(home);
  const membership = await selectMembership(home, options.federationId);
  const { requestTimeoutMs } = options;
  const connection = membershipConnection(membership, identity, { requestTimeoutMs, reconnection: false });
  let finished: FederationFinished | undefined;
  // Delivered during the handshake, before ready() resolves (connection.ts holds early events).
  connection.on('federation:finished', (f) => (finished = f));
  try {
    connection.open();
    await connection.ready({ timeoutMs: PREFLIGHT_TIMEOUT_MS, signal: options.signal });
    if (!finished) return undefined;
    await checkNewestAnnounced(home, membership.federation, finished.signed, "the federation's end");
    const hash = finished.adapterHash;
    if (!(await keepFinalAdapter({ home, connection }, hash, warn))) return undefined;
    await recordFinalResult(home, membership.federation, finished);
    return { hash, path: adapterCachePath(home, hash), rounds: finished.rounds };
  } catch {
    return undefined; // the ordinary start reports what is wrong, and retries what can be retried
  } finally {
    connection.close();
  }
}

/** The final adapter as the result of the round that made it, for `fedit client export`. */
export async function recordFinalResult(
  home: string,
  federation: string,
  finished: FederationFinished,
): Promise<void> {
  if (finished.round === 0) return; // the initial adapter: no round made it
  await recordRoundResult(home, federation, {
    round: finished.round,
    outcome: 'aggregated',
    adapterHash: finished.adapterHash,
    updates: finished.updates,
  });
}
