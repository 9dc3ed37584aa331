// Enrolment: a new participant presents its invite token and public keys, signed with the new
// signing key over the connection's auth nonce:
//
//   digest    = SHA-256(canonical({ federation, coordinator, nonce, token, sign, box, displayName }))
//   signature = Ed25519 over the digest under 'fedit/enrol/v1'
//
// The signature proves possession of the signing key, binds the box key and display name to it,
// and ties the request to this connection's challenge, so a captured request cannot be replayed
// on another connection. A successful enrolment also authenticates the connection.
import type { AuthContext } from '../crypto/auth.ts';
import { binaryCanonicalDigest } from '../crypto/digest.ts';
import type { Identity } from '../crypto/identity.ts';
import { DOMAINS, signDigest, verifyDigest } from '../crypto/sign.ts';
import { ProtocolError } from './errors.ts';
import type { EnrolRequest } from './messages.ts';

/** The digest an enrolment request signs, for the connection challenge `context`. */
export function enrolmentDigest(context: AuthContext, request: Omit<EnrolRequest, 'signature'>): Uint8Array {
  return binaryCanonicalDigest({
    federation: context.federation,
    coordinator: context.coordinator,
    nonce: context.nonce,
    token: request.token,
    sign: request.identity.sign,
    box: request.identity.box,
    displayName: request.displayName,
  });
}

/** The enrolment request of `identity`, answering the connection challenge `context`. */
export function signEnrolment(
  identity: Identity,
  context: AuthContext,
  options: { token: Uint8Array; displayName: string },
): EnrolRequest {
  const request = {
    token: options.token.slice(),
    identity: { sign: identity.sign.publicKey.slice(), box: identity.box.publicKey.slice() },
    displayName: options.displayName,
  };
  return {
    ...request,
    signature: signDigest(identity.sign.secretKey, DOMAINS.enrol, enrolmentDigest(context, request)),
  };
}

/**
 * Throws ProtocolError PROTOCOL_SIGNATURE unless `request` (already validated) is signed by its
 * own signing key for `context`. Whether the token is valid and unused is the coordinator's check.
 */
export function verifyEnrolment(context: AuthContext, request: EnrolRequest): void {
  if (
    !verifyDigest(request.identity.sign, DOMAINS.enrol, enrolmentDigest(context, request), request.signature)
  ) {
    throw new ProtocolError(
      'PROTOCOL_SIGNATURE',
      'payload.signature',
      'payload.signature does not verify: the enrolment was signed for another connection or federation, or by a key other than payload.identity.sign',
    );
  }
}
