// Revoking a participant: a signed `revoke` record in the round log. From that record on the
// participant is not selected, cannot authenticate, and no update of theirs counts. Revocation is
// final. The coordinator must be stopped (the log has one writer; see lock.ts); it reads the
// revocation from the log when it starts again.

import { FeditError, RoundLog, type RoundRecord } from '@fedit/shared';
import { openFederationDir } from './dir.ts';
import { lockFederation } from './lock.ts';

const PARTICIPANT_ID = /^[0-9a-f]{32}$/;

/** Appends a revoke record for `participant` (its id) with `reason`, and returns it. */
export async function revokeParticipant(
  root: string,
  participant: string,
  reason: string,
): Promise<RoundRecord> {
  const { paths, config, identity } = openFederationDir(root);
  if (!PARTICIPANT_ID.test(participant))
    throw new FeditError(
      'PARTICIPANT_ID',
      `${JSON.stringify(participant)} is not a participant id (32 lowercase hex digits; see fedit coordinator participants)`,
    );
  const why = reason.trim();
  if (why.length === 0 || why.length > 500)
    throw new FeditError('REVOKE_REASON', 'give a reason of 1 to 500 characters');
  const lock = lockFederation(root, 'revoke');
  try {
    const log = await RoundLog.open(paths.log, {
      federation: config.id,
      coordinatorSecretKey: identity.sign.secretKey,
    });
    try {
      if (log.state.participantKey(participant) === undefined)
        throw new FeditError(
          'PARTICIPANT_UNKNOWN',
          `participant ${participant} is not enrolled in ${config.id}`,
        );
      if (log.state.isRevoked(participant))
        throw new FeditError('PARTICIPANT_REVOKED', `participant ${participant} is already revoked`);
      return await log.append({ kind: 'revoke', body: { participant, reason: why } });
    } finally {
      await log.close();
    }
  } finally {
    lock.release();
  }
}
