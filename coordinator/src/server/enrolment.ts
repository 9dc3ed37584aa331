// 'enrol': a new participant joins with an invite's one-time token and its public identity, signed
// over this connection's challenge. The result is an enrol record in the round log, and the
// connection is authenticated as the new participant.

import { fingerprint, toHex, verifyEnrolment, type ClientPayload, type EnrolResult } from '@fedit/shared';
import { redeemInvite } from '../federation/invites.ts';
import type { Emit } from './events.ts';
import type { Ledger } from './ledger.ts';
import { timed } from './profile.ts';
import { RefusedError } from './refusal.ts';
import type { Sessions } from './sessions.ts';
import type { FeditSocket } from './transport.ts';

export class Enrolment {
  /** Signing keys (hex) whose enrol record is being appended. */
  readonly #inProgress = new Set<string>();

  constructor(private readonly o: { dir: string; ledger: Ledger; sessions: Sessions; emit: Emit }) {}

  async enrol(socket: FeditSocket, p: ClientPayload<'enrol'>): Promise<EnrolResult> {
    const { ledger, sessions } = this.o;
    timed('crypto.verify', () => verifyEnrolment(socket.data.challenge.consume(), p));
    const id = fingerprint({ sign: p.identity.sign, box: p.identity.box });
    const existing = ledger.participant(id);
    if (existing) {
      if (existing.revoked)
        throw new RefusedError(
          'AUTH_REVOKED',
          `this identity was removed from the federation: ${existing.revoked.reason}`,
          'payload.identity.sign',
        );
      sessions.authenticate(socket, id); // enrolling again is proving who one is
      return { participantId: id };
    }
    this.#refuseKeyInUse(p.identity.sign);
    // The enrolment is two writes: the invite's "used" line (durable first, so an invite can
    // never enrol two keys) and then the enrol record. A crash or a failed append between them
    // leaves the invite used by nobody enrolled; redeemInvite lets the same participant redeem
    // it again, so the retry finishes the enrolment. While one enrolment of a key awaits its
    // append, a second of the same key (a client retrying) would pass every check above and
    // append a second enrol record: it is refused until the first has finished.
    const signKey = toHex(p.identity.sign);
    if (this.#inProgress.has(signKey))
      throw new RefusedError(
        'ENROL_IN_PROGRESS',
        'an enrolment of this signing key is in progress; try again in a moment',
        'payload.identity.sign',
      );
    redeemInvite(this.o.dir, p.token, id, (code, message) => {
      throw new RefusedError(code, message, 'payload.token');
    });
    this.#inProgress.add(signKey);
    try {
      await ledger.append({
        kind: 'enrol',
        body: {
          participant: id,
          publicKey: signKey,
          boxKey: toHex(p.identity.box),
          displayName: p.displayName,
        },
      });
    } finally {
      this.#inProgress.delete(signKey);
    }
    this.o.emit({ type: 'enrolled', participant: id, displayName: p.displayName });
    sessions.authenticate(socket, id);
    return { participantId: id };
  }

  // One enrolment per signing key: a revoked participant does not come back by pairing its key
  // with a new box key (and auth:prove, which finds participants by signing key, stays unambiguous).
  #refuseKeyInUse(sign: Uint8Array): void {
    const sameKey = this.o.ledger.participantBySignKey(sign);
    if (sameKey)
      throw new RefusedError(
        sameKey.revoked ? 'AUTH_REVOKED' : 'ENROL_KEY_IN_USE',
        sameKey.revoked
          ? `this signing key was removed from the federation: ${sameKey.revoked.reason}`
          : `this signing key is already enrolled as participant ${sameKey.id}`,
        'payload.identity.sign',
      );
  }
}
