// Renaming: this participant asks the coordinator to show it under a new display name. The
// request is signed with the participant's own key (shared/protocol/rename.ts), so the rename
// record in the round log proves the participant asked for it; the membership file then keeps
// the new name (a later join or run uses it). The coordinator answers only once the record is
// in its log.
import { signRename } from '@fedit/shared';
import type { FederationConnection } from './connection.ts';
import { checkDisplayName, connectOnce } from './join.ts';
import { requireIdentity, resolveHome, selectMembership, writeMembership, type Membership } from './store.ts';

export interface RenameOptions {
  /** The fedit home folder (default: resolveHome()). */
  home?: string;
  /** Which joined federation (default: the only one). */
  federation?: string;
  /** How long to wait for the coordinator (default 20 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * An authenticated connection to the federation's coordinator to send the request on (the
   * app's running participant); without one a connection is opened for the request, which
   * replaces this participant's other connection to the coordinator (it reconnects).
   */
  connection?: FederationConnection;
}

/** Renames this participant in a joined federation; returns the membership as now stored. */
export async function renameParticipant(
  displayName: string,
  options: RenameOptions = {},
): Promise<Membership> {
  const name = checkDisplayName(displayName);
  const home = resolveHome(options.home);
  const membership = await selectMembership(home, options.federation);
  const identity = await requireIdentity(home);
  const request = signRename(identity, {
    federation: membership.federation,
    participant: membership.participantId,
    displayName: name,
  });
  const connection =
    options.connection ?? (await connectOnce(membership, identity, { kind: 'prove' }, options));
  try {
    await connection.request('participant:rename', request);
  } finally {
    if (connection !== options.connection) connection.close();
  }
  // Read again: the file may have changed (a join refreshing the settings) while the request ran.
  const renamed = { ...(await selectMembership(home, membership.federation)), displayName: name };
  await writeMembership(home, renamed);
  return renamed;
}
