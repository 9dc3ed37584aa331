// `fedit client verify` (and the app's line): connects once to the federation's coordinator and
// re-checks this participant's receipts and the heads it kept (receipts.ts), and optionally a
// head another participant or auditor holds: two heads meeting catch a coordinator that shows
// different logs to different participants.
import type { SignedTreeHead } from '@fedit/shared';
import { connectOnce } from './join.ts';
import { receiptContext, verifyReceipts, type VerifyReport } from './receipts.ts';
import { requireIdentity, resolveHome, selectMembership } from './store.ts';

export interface VerifyOptions {
  home?: string;
  federation?: string;
  /** A signed tree head someone else holds. */
  otherHead?: SignedTreeHead;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export async function verifyMembershipLog(options: VerifyOptions = {}): Promise<VerifyReport> {
  const home = resolveHome(options.home);
  const membership = await selectMembership(home, options.federation);
  const identity = await requireIdentity(home);
  const connection = await connectOnce(membership, identity, { kind: 'prove' }, options);
  try {
    return await verifyReceipts(
      connection,
      home,
      receiptContext(membership, { id: membership.participantId, signKey: identity.sign.publicKey }),
      options.otherHead,
    );
  } finally {
    connection.close();
  }
}
