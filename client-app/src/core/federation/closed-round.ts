// What stays of a round once it has closed, on the participant's disk: its result recorded (which
// cached adapter is which round's, for `fedit client export`: results.ts), its pending upload
// dropped and its working folder removed; and, for a participant stopping after it (maxRounds),
// the global adapter it produced kept before the connection goes (participant.ts); and the
// receipt of its counted update, checked against the signed log (receipts.ts).
import { rm } from 'node:fs/promises';
import type { RoundClosed } from '@fedit/shared';
import { FederationError } from './errors.ts';
import { keepRoundReceipt, receiptContext } from './receipts.ts';
import { recordRoundResult } from './results.ts';
import { keepGlobalAdapter } from './round-io.ts';
import type { ParticipantSession } from './session.ts';
import { roundDir } from './store.ts';
import { dropPendingUpload } from './update.ts';

/** Records the closed round's result and clears what the participant kept for it. */
export async function settleClosedRound(session: ParticipantSession, closed: RoundClosed): Promise<void> {
  const { home } = session;
  const { federation } = session.membership;
  await recordRoundResult(home, federation, {
    round: closed.round,
    outcome: closed.outcome,
    adapterHash: closed.adapterHash,
    updates: closed.participants,
    ...(closed.privacy && { epsilon: closed.privacy.epsilon }),
  });
  const dir = roundDir(home, federation, closed.round);
  await dropPendingUpload(dir);
  await rm(dir, { recursive: true, force: true });
}

/**
 * Keeps the global adapter the closed round produced (a participant only downloads global adapters
 * for rounds it trains in); a failure is a warning, the round's end is not held up by it.
 */
export async function keepClosedRoundAdapter(
  session: ParticipantSession,
  closed: RoundClosed,
  warn: (message: string) => void,
): Promise<void> {
  if (closed.outcome !== 'aggregated') return;
  await keepGlobalAdapter(session, closed.adapterHash).catch((error: unknown) =>
    warn(`could not keep round ${closed.round}'s global adapter: ${(error as Error).message}`),
  );
}

/**
 * Keeps the receipt of this participant's update in an aggregated round (receipts.ts). A log the
 * coordinator forked (LOG_FORKED) stops the participant; any other failure is a warning.
 */
export async function keepClosedRoundReceipt(
  session: ParticipantSession,
  closed: RoundClosed,
  warn: (message: string) => void,
): Promise<void> {
  if (closed.outcome !== 'aggregated') return;
  const { connection, membership, home, identity } = session;
  try {
    await keepRoundReceipt(
      connection,
      home,
      closed.round,
      receiptContext(membership, { id: connection.participantId, signKey: identity.sign.publicKey }),
    );
  } catch (error) {
    if (error instanceof FederationError && error.code === 'LOG_FORKED') throw error;
    warn(`no receipt for round ${closed.round}: ${(error as Error).message}`);
  }
}
