// Revoking a participant: a signed `revoke` record in the round log. From that record on the
// participant is not selected, cannot authenticate, and no update of theirs counts. Revocation is
// final.
//
// The log has one writer (lock.ts). With no coordinator running, the command takes the lock and
// appends the record itself. While one runs, the command asks it (revoke-requests.ts) and waits
// for the record: the running coordinator appends it, closes the participant's connections and
// leaves it out of the open round (server/revocations.ts).

import { FeditError, RoundLog, type FederationState } from '@fedit/shared';
import { openFederationDir } from './dir.ts';
import { lockFederation, lockHolder } from './lock.ts';
import { requestRevocation } from './revoke-requests.ts';

const PARTICIPANT_ID = /^[0-9a-f]{32}$/;
/** How long the command waits for a running coordinator's answer, by default. */
export const REVOKE_WAIT_MS = 30_000;

export interface Revocation {
  /** The revoke record's sequence number in the round log. */
  seq: number;
  /** Whether a running coordinator appended it (and dropped the participant at once). */
  live: boolean;
}

/** The reason, trimmed, or REVOKE_REASON. */
export function revocationReason(reason: string): string {
  const why = reason.trim();
  if (why.length === 0 || why.length > 500)
    throw new FeditError('REVOKE_REASON', 'give a reason of 1 to 500 characters');
  return why;
}

/** Refuses a revocation the log would refuse: an unknown or already revoked participant. */
export function checkRevocable(state: FederationState, federation: string, participant: string): void {
  if (state.participantKey(participant) === undefined)
    throw new FeditError(
      'PARTICIPANT_UNKNOWN',
      `participant ${participant} is not enrolled in ${federation}`,
    );
  if (state.isRevoked(participant))
    throw new FeditError('PARTICIPANT_REVOKED', `participant ${participant} is already revoked`);
}

/** Revokes `participant` (its id) with `reason`, directly or through the running coordinator. */
export async function revokeParticipant(
  root: string,
  participant: string,
  reason: string,
  options: { waitMs?: number } = {},
): Promise<Revocation> {
  const { paths, config, identity } = openFederationDir(root);
  if (!PARTICIPANT_ID.test(participant))
    throw new FeditError(
      'PARTICIPANT_ID',
      `${JSON.stringify(participant)} is not a participant id (32 lowercase hex digits; see fedit coordinator participants)`,
    );
  const why = revocationReason(reason);
  if (lockHolder(root)?.purpose === 'coordinator') {
    const answer = await requestRevocation(
      root,
      { participant, reason: why },
      options.waitMs ?? REVOKE_WAIT_MS,
    );
    if ('error' in answer) throw new FeditError(answer.error.code, answer.error.message);
    return { seq: answer.seq, live: true };
  }
  const lock = lockFederation(root, 'revoke');
  try {
    const log = await RoundLog.open(paths.log, {
      federation: config.id,
      coordinatorSecretKey: identity.sign.secretKey,
    });
    try {
      checkRevocable(log.state, config.id, participant);
      const record = await log.append({ kind: 'revoke', body: { participant, reason: why } });
      return { seq: record.seq, live: false };
    } finally {
      await log.close();
    }
  } finally {
    lock.release();
  }
}
