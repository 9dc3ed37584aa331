// Ed25519 signatures over digests, never over raw data, each under a domain tag so a signature
// made for one purpose (an envelope) can never be presented as another (an auth proof):
//
//   signed message = SHA-256( u8 len(domain) || domain (ASCII) || digest (32 bytes) )
//
// tweetnacl's Ed25519 verify accepts malleated signatures (S + L verifies wherever S does).
// verifyDigest refuses S >= L, which removes that malleation, but signature bytes are still not
// unique: a signer can make any number of valid signatures of one digest (another nonce). Never
// use signature bytes as an identifier or to detect replays; use the digest of the signed
// content (envelopeDigest) instead.
import nacl from 'tweetnacl';
import { assertBytes } from './bytes.ts';
import { sha256, SHA256_BYTES } from './digest.ts';
import { CryptoError } from './errors.ts';

export const SIGN_PUBLIC_KEY_BYTES = 32;
/** tweetnacl's signing secret key: 32-byte seed followed by the 32-byte public key. */
export const SIGN_SECRET_KEY_BYTES = 64;
export const SIGNATURE_BYTES = 64;

/** A domain tag: `fedit/<purpose>/v<version>`, lowercase ASCII. */
export type SignatureDomain = `fedit/${string}/v${number}`;

/** The domains fedit signs under. Add one per new purpose; never reuse a tag for another. */
export const DOMAINS = {
  envelope: 'fedit/envelope/v1',
  auth: 'fedit/auth/v1',
  enrol: 'fedit/enrol/v1',
  rename: 'fedit/rename/v1',
  record: 'fedit/record/v1',
  treeHead: 'fedit/tree-head/v1',
  /** A secure round's advertised keys, shares commitment and reveal (secagg/round/signing.ts). */
  secaggAdvert: 'fedit/secagg-advert/v1',
  secaggShares: 'fedit/secagg-shares/v1',
  secaggReveal: 'fedit/secagg-reveal/v1',
  /** A survivor's signature of the one secagg-unmask record it was shown (secagg/round/consistency.ts). */
  secaggConsistency: 'fedit/secagg-consistency/v1',
} as const satisfies Record<string, SignatureDomain>;

// The order L of the Ed25519 base point; a signature's S (its last 32 bytes, little-endian) must be below it.
const GROUP_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;
const DOMAIN_PATTERN = /^fedit\/[a-z0-9-]+(\/[a-z0-9-]+)*\/v[0-9]+$/;

/** Signs `digest` (32 bytes) under `domain` with a 64-byte tweetnacl secret key. */
export function signDigest(secretKey: Uint8Array, domain: SignatureDomain, digest: Uint8Array): Uint8Array {
  assertBytes(secretKey, SIGN_SECRET_KEY_BYTES, 'secretKey');
  return nacl.sign.detached(signedMessage(domain, digest), secretKey);
}

/**
 * True when `signature` is `publicKey`'s signature of `digest` under `domain`. Wrong-length keys
 * or digests throw (a caller's bug); a signature of the wrong length is simply not valid.
 */
export function verifyDigest(
  publicKey: Uint8Array,
  domain: SignatureDomain,
  digest: Uint8Array,
  signature: Uint8Array,
): boolean {
  assertBytes(publicKey, SIGN_PUBLIC_KEY_BYTES, 'publicKey');
  const message = signedMessage(domain, digest);
  if (!(signature instanceof Uint8Array) || signature.byteLength !== SIGNATURE_BYTES) return false;
  if (!hasCanonicalS(signature)) return false;
  return nacl.sign.detached.verify(message, signature, publicKey);
}

function hasCanonicalS(signature: Uint8Array): boolean {
  let s = 0n;
  for (let i = SIGNATURE_BYTES - 1; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]);
  return s < GROUP_ORDER;
}

function signedMessage(domain: string, digest: Uint8Array): Uint8Array {
  if (typeof domain !== 'string' || !DOMAIN_PATTERN.test(domain) || domain.length > 255) {
    throw new CryptoError(
      'CRYPTO_DOMAIN',
      `signature domain ${JSON.stringify(domain)} is not of the form fedit/<purpose>/v<n>`,
      { field: 'domain' },
    );
  }
  assertBytes(digest, SHA256_BYTES, 'digest');
  const tag = Buffer.from(domain, 'ascii');
  return sha256(Uint8Array.of(tag.byteLength), tag, digest);
}
