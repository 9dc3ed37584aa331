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
//
// Verification runs on node:crypto's native Ed25519 (OpenSSL), ~30x faster than tweetnacl's: a
// secure round's coordinator checks three signatures per participant per round, and they were
// most of its secure cost. The acceptance rules are tweetnacl's, unchanged: the check is the
// cofactorless [S]B = R + [k]A with R compared by its encoding, S >= L refused first (here, before
// either implementation sees it), non-canonical (y >= p) and small-order public keys decoded and
// judged the same way by both. shared/test/crypto-sign-native.test.ts compares the two verdicts
// on thousands of random signatures, every malleation, wrong keys and messages, and small-order
// and non-canonical keys and R; they agree on all. Where a key cannot be imported natively (not
// a curve point), the verdict is false, which tweetnacl also returns for such keys: the stricter
// of the two, so no signature tweetnacl refuses can pass here. Signing is native too (~85x
// faster), byte-identical to tweetnacl's: see nativeSigningKey.
import {
  createPrivateKey,
  createPublicKey,
  sign as nativeSign,
  verify as nativeVerify,
  type KeyObject,
} from 'node:crypto';
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
  const message = signedMessage(domain, digest);
  const key = nativeSigningKey(secretKey);
  return key ? new Uint8Array(nativeSign(null, message, key)) : nacl.sign.detached(message, secretKey);
}

// An Ed25519 PKCS#8 private key is this fixed DER prefix followed by the 32-byte seed.
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
/** Imported signing keys: a process signs with a few (its identity, the coordinator's). */
const signingKeys = new WeakMap<Uint8Array, { bytes: Buffer; key: KeyObject | null }>();

/**
 * The native key of a tweetnacl secret key (seed || public key), or null when its second half is
 * not the seed's public key: tweetnacl hashes the half it is given, native signing derives it, so
 * only a consistent key signs byte-identically (Ed25519 is deterministic; crypto-sign-native.test.ts
 * checks it) and an inconsistent one stays on tweetnacl. Cached by the key array's identity, with
 * its bytes compared on each use so an array written over since is imported afresh.
 */
function nativeSigningKey(secretKey: Uint8Array): KeyObject | null {
  const cached = signingKeys.get(secretKey);
  if (cached && cached.bytes.equals(secretKey)) return cached.key;
  const seed = secretKey.subarray(0, 32);
  const candidate = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const derived = createPublicKey(candidate)
    .export({ format: 'der', type: 'spki' })
    .subarray(SPKI_PREFIX.byteLength);
  const key = Buffer.compare(derived, secretKey.subarray(32)) === 0 ? candidate : null;
  signingKeys.set(secretKey, { bytes: Buffer.from(secretKey), key });
  return key;
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
  const key = nativeKey(publicKey);
  return key !== undefined && nativeVerify(null, message, key, signature);
}

// An Ed25519 SubjectPublicKeyInfo is this fixed DER prefix followed by the raw 32-byte key.
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
/** Imported keys by hex: importing costs about as much as a verification, and keys repeat. */
const keyCache = new Map<string, KeyObject | null>();
/** Bounded: the keys come from peers; past this many the oldest is dropped. */
const KEY_CACHE_ENTRIES = 4096;

function nativeKey(publicKey: Uint8Array): KeyObject | undefined {
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('hex');
  let key = keyCache.get(id);
  if (key === undefined) {
    try {
      key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    } catch {
      key = null; // not an Ed25519 point OpenSSL will take: no signature of it verifies
    }
    if (keyCache.size >= KEY_CACHE_ENTRIES) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(id, key);
  }
  return key ?? undefined;
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
