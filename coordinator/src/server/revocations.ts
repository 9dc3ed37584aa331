// Revocation while the coordinator runs (federation/revoke.ts, revoke-requests.ts). For each
// request: the revoke record is appended (the log refuses an unknown or already revoked
// participant), the participant's connection is closed (and it cannot authenticate again: the
// ledger says it is revoked), and it is left out of every round from now on (selection draws only
// from the eligible).
//
// The open round: a revoked participant's update does not count. One not yet counted is refused
// (the participant is dropped from the round, with the revocation as the reason, so a commit in
// flight gets UPDATE_DROPPED); one already counted is taken out of the count and the participant
// dropped likewise, since the round-closed record may not count an update of a participant the
// log has revoked. The round then closes with the others' updates (or aborts, if too few remain).
// A round being closed is waited for (RoundRunner.idle), so the two records never cross.

import { rmSync } from 'node:fs';
import type { FederationConfig } from '@fedit/shared';
import { checkRevocable, revocationReason } from '../federation/revoke.ts';
import {
  watchRevocationRequests,
  type RevokeAnswer,
  type RevokeRequest,
} from '../federation/revoke-requests.ts';
import type { Emit } from './events.ts';
import type { Ledger } from './ledger.ts';
import type { RoundRunner } from './round-runner.ts';
import type { Sessions } from './sessions.ts';

export interface RevocationsOptions {
  root: string;
  config: FederationConfig;
  ledger: Ledger;
  sessions: Sessions;
  rounds: RoundRunner;
  emit: Emit;
}

/** Starts taking revocation requests; returns a function that stops. */
export function serveRevocations(o: RevocationsOptions): () => void {
  return watchRevocationRequests(o.root, (request) => revokeWhileRunning(o, request));
}

async function revokeWhileRunning(o: RevocationsOptions, request: RevokeRequest): Promise<RevokeAnswer> {
  const reason = revocationReason(request.reason);
  await o.rounds.idle();
  checkRevocable(o.ledger.state, o.config.id, request.participant);
  leaveOutOfOpenRound(o.rounds, request.participant, `revoked: ${reason}`);
  const record = await o.ledger.append({
    kind: 'revoke',
    body: { participant: request.participant, reason },
  });
  o.sessions.disconnect(request.participant);
  o.emit({ type: 'revoked', participant: request.participant, reason });
  return { seq: record.seq };
}

function leaveOutOfOpenRound(rounds: RoundRunner, participant: string, why: string): void {
  const round = rounds.current;
  if (!round?.selected.has(participant)) return;
  for (const upload of [...round.uploads.values()]) {
    if (upload.participant !== participant) continue;
    round.uploads.delete(upload.id);
    rmSync(upload.dir, { recursive: true, force: true });
  }
  round.counted.delete(participant);
  if (!round.dropped.some((d) => d.participant === participant)) round.drop(participant, why);
}
