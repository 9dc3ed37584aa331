// Renaming: an enrolled participant asks to be shown under a new display name. The request is
// signed with the participant's own signing key, the one its enrol record holds:
//
//   digest    = SHA-256(canonical({ federation, participant, displayName, nonce }))
//   signature = Ed25519 over the digest under 'fedit/rename/v1'
//
// canonical is the binary canonical encoding (crypto/digest.ts), exactly as enrolmentDigest uses
// it: federation and participant (its id, the fingerprint) and displayName as strings, nonce as a
// 32-byte byte string. The coordinator records all four with the signature in a rename record,
// so an auditor re-derives the digest from the log alone and checks that the participant asked
// for the name. The nonce is the participant's random choice: a nonce the log already holds is a
// replay (the coordinator refuses it and the audit fails it), so a captured request cannot be
// sent again, nor a renamed participant be renamed back with its own earlier request.
import { randomBytes } from 'node:crypto';
import { binaryCanonicalDigest } from '../crypto/digest.ts';
import type { Identity } from '../crypto/identity.ts';
import { DOMAINS, signDigest, verifyDigest } from '../crypto/sign.ts';
import type { RenameRequest } from './messages.ts';

export const RENAME_NONCE_BYTES = 32;

/** What a rename signs: the request in the context of one federation and participant. */
export interface RenameFields {
  federation: string;
  /** The participant id (the fingerprint of its keys). */
  participant: string;
  displayName: string;
  nonce: Uint8Array;
}

/** The digest a rename request signs. */
export function renameDigest(fields: RenameFields): Uint8Array {
  const { federation, participant, displayName, nonce } = fields;
  return binaryCanonicalDigest({ federation, participant, displayName, nonce });
}

/** The rename request of `identity`, enrolled as `participant` in `federation`, with a fresh nonce. */
export function signRename(
  identity: Identity,
  options: { federation: string; participant: string; displayName: string },
): RenameRequest {
  const nonce = new Uint8Array(randomBytes(RENAME_NONCE_BYTES));
  const digest = renameDigest({ ...options, nonce });
  return {
    displayName: options.displayName,
    nonce,
    signature: signDigest(identity.sign.secretKey, DOMAINS.rename, digest),
  };
}

/** Whether `signature` is the rename signature of signing key `publicKey` (32 bytes) over `fields`. */
export function verifyRename(publicKey: Uint8Array, fields: RenameFields, signature: Uint8Array): boolean {
  return verifyDigest(publicKey, DOMAINS.rename, renameDigest(fields), signature);
}
