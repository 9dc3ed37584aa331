// A participant's or coordinator's identity: an Ed25519 key pair that signs (envelopes, auth
// proofs, round records) and an X25519 key pair that sealed chunks are encrypted to. The two are
// independent keys (no Ed25519-to-X25519 conversion), derived from one 32-byte seed with HKDF
// when a seed is given, so an identity can be backed up as one secret.
import { hkdfSync } from 'node:crypto';
import nacl from 'tweetnacl';
import { assertBytes, describe, fromBase64url, toBase64url, toHex } from './bytes.ts';
import { sha256 } from './digest.ts';
import { CryptoError } from './errors.ts';
import { SIGN_PUBLIC_KEY_BYTES } from './sign.ts';

export const IDENTITY_SEED_BYTES = 32;
export const BOX_PUBLIC_KEY_BYTES = 32;
export const BOX_SECRET_KEY_BYTES = 32;
/** Bytes of SHA-256 kept in a fingerprint: 128 bits, 32 hex digits. */
export const FINGERPRINT_BYTES = 16;

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** Both key pairs. `sign.secretKey` is tweetnacl's 64-byte form (seed || public key). */
export interface Identity {
  sign: KeyPair;
  box: KeyPair;
}

/** What others know of an identity: its two public keys, 32 bytes each. */
export interface PublicIdentity {
  sign: Uint8Array;
  box: Uint8Array;
}

/** An identity as stored on disk: JSON-safe, unpadded base64url. Keep it secret. */
export interface SerializedIdentity {
  version: 1;
  /** The 32-byte Ed25519 seed (not tweetnacl's 64-byte secret key) and its public key. */
  sign: { secretKey: string; publicKey: string };
  box: { secretKey: string; publicKey: string };
}

export interface SerializedPublicIdentity {
  sign: string;
  box: string;
}

const SIGN_INFO = Buffer.from('fedit/identity/sign/v1');
const BOX_INFO = Buffer.from('fedit/identity/box/v1');
const FINGERPRINT_TAG = Buffer.from('fedit/fingerprint/v1');

/**
 * A new identity. Without `seed` it is random; with a 32-byte `seed` it is derived from it
 * (HKDF-SHA256, one info string per key pair), so the same seed always gives the same identity.
 */
export function generateIdentity(seed?: Uint8Array): Identity {
  const root = seed ?? nacl.randomBytes(IDENTITY_SEED_BYTES);
  assertBytes(root, IDENTITY_SEED_BYTES, 'seed');
  const signSeed = new Uint8Array(hkdfSync('sha256', root, new Uint8Array(0), SIGN_INFO, 32));
  const boxSecret = new Uint8Array(hkdfSync('sha256', root, new Uint8Array(0), BOX_INFO, 32));
  return identityFromSecretKeys(signSeed, boxSecret);
}

/** The identity whose Ed25519 seed and X25519 secret key are given (32 bytes each). */
export function identityFromSecretKeys(signSeed: Uint8Array, boxSecretKey: Uint8Array): Identity {
  assertBytes(signSeed, 32, 'sign seed');
  assertBytes(boxSecretKey, BOX_SECRET_KEY_BYTES, 'box secret key');
  const sign = nacl.sign.keyPair.fromSeed(signSeed);
  const box = nacl.box.keyPair.fromSecretKey(boxSecretKey);
  return { sign: { publicKey: sign.publicKey, secretKey: sign.secretKey }, box };
}

/** The public half of `identity`. */
export function publicIdentity(identity: Identity): PublicIdentity {
  return { sign: identity.sign.publicKey.slice(), box: identity.box.publicKey.slice() };
}

/**
 * A short, stable name for a public identity, for display and as the participant id:
 * the first 16 bytes of SHA-256("fedit/fingerprint/v1" || sign public key || box public key),
 * as 32 lowercase hex digits. Both keys are bound: swapping either gives another fingerprint.
 */
export function fingerprint(identity: PublicIdentity): string {
  assertBytes(identity.sign, SIGN_PUBLIC_KEY_BYTES, 'identity.sign');
  assertBytes(identity.box, BOX_PUBLIC_KEY_BYTES, 'identity.box');
  return toHex(sha256(FINGERPRINT_TAG, identity.sign, identity.box).subarray(0, FINGERPRINT_BYTES));
}

/** The JSON-safe form of an identity, secret keys included. */
export function serializeIdentity(identity: Identity): SerializedIdentity {
  return {
    version: 1,
    sign: {
      secretKey: toBase64url(identity.sign.secretKey.subarray(0, 32)),
      publicKey: toBase64url(identity.sign.publicKey),
    },
    box: { secretKey: toBase64url(identity.box.secretKey), publicKey: toBase64url(identity.box.publicKey) },
  };
}

/**
 * Parses what serializeIdentity wrote (as an object or as JSON text). Throws CryptoError
 * CRYPTO_IDENTITY / CRYPTO_ENCODING naming the field; a public key that does not belong to its
 * secret key (a corrupted or hand-edited file) is an error, not silently recomputed.
 */
export function parseIdentity(input: unknown): Identity {
  const value = typeof input === 'string' ? parseJson(input, 'identity') : input;
  const record = object(value, 'identity');
  if (record.version !== 1) {
    throw new CryptoError(
      'CRYPTO_IDENTITY',
      `identity.version must be 1, got ${describe(record.version)}; this file was written by another fedit version`,
      { field: 'identity.version' },
    );
  }
  const sign = object(record.sign, 'identity.sign');
  const box = object(record.box, 'identity.box');
  const identity = identityFromSecretKeys(
    fromBase64url(sign.secretKey, 'identity.sign.secretKey', 32),
    fromBase64url(box.secretKey, 'identity.box.secretKey', BOX_SECRET_KEY_BYTES),
  );
  checkPublicKey(sign.publicKey, identity.sign.publicKey, 'identity.sign.publicKey');
  checkPublicKey(box.publicKey, identity.box.publicKey, 'identity.box.publicKey');
  return identity;
}

/** The JSON-safe form of a public identity. */
export function serializePublicIdentity(identity: PublicIdentity): SerializedPublicIdentity {
  return { sign: toBase64url(identity.sign), box: toBase64url(identity.box) };
}

/** Parses what serializePublicIdentity wrote. */
export function parsePublicIdentity(input: unknown, field = 'publicIdentity'): PublicIdentity {
  const record = object(input, field);
  return {
    sign: fromBase64url(record.sign, `${field}.sign`, SIGN_PUBLIC_KEY_BYTES),
    box: fromBase64url(record.box, `${field}.box`, BOX_PUBLIC_KEY_BYTES),
  };
}

function checkPublicKey(text: unknown, derived: Uint8Array, field: string): void {
  const stored = fromBase64url(text, field, 32);
  if (Buffer.compare(stored, derived) !== 0) {
    throw new CryptoError(
      'CRYPTO_IDENTITY',
      `${field} does not belong to the secret key stored beside it; the identity file is corrupted`,
      { field },
    );
  }
}

function parseJson(text: string, field: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new CryptoError('CRYPTO_IDENTITY', `${field} is not valid JSON: ${(cause as Error).message}`, {
      cause,
      field,
    });
  }
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CryptoError('CRYPTO_IDENTITY', `${field} must be an object, got ${describe(value)}`, { field });
  }
  return value as Record<string, unknown>;
}
