import { FeditError } from '../errors.ts';

export type CryptoErrorCode =
  /** A key, digest, signature or nonce has the wrong type or byte length. */
  | 'CRYPTO_LENGTH'
  /** A serialised identity is malformed, or its public keys do not match its secret keys. */
  | 'CRYPTO_IDENTITY'
  /** A text field is not strict base64url (or hex) of the expected length. */
  | 'CRYPTO_ENCODING'
  /** A value cannot be put in the canonical encoding (a float, a lone surrogate, a cycle, ...). */
  | 'CRYPTO_CANONICAL'
  /** A signature domain tag is not of the form fedit/<name>/v<n>. */
  | 'CRYPTO_DOMAIN'
  /** X25519 gave the all-zero secret: the peer's public key is a low-order point. */
  | 'CRYPTO_KEY_AGREEMENT'
  /** A chunk index is outside 0 .. chunkCount - 1, or the chunk count is invalid. */
  | 'CRYPTO_CHUNK_INDEX'
  /** A sealed chunk failed authentication: altered, moved, or sealed under another key. */
  | 'CRYPTO_OPEN_FAILED'
  /** An authentication proof does not verify for this connection's challenge. */
  | 'CRYPTO_AUTH_FAILED'
  /** An authentication challenge was already answered, or has expired. */
  | 'CRYPTO_AUTH_CHALLENGE';

/**
 * A cryptographic operation was handed unusable input or found that data was tampered with.
 * `field`, when set, names the value at fault ('identity.sign.publicKey', 'chunk 3').
 */
export class CryptoError extends FeditError {
  declare readonly code: CryptoErrorCode;
  readonly field: string | undefined;

  constructor(code: CryptoErrorCode, message: string, options?: { cause?: unknown; field?: string }) {
    super(code, message, options);
    this.field = options?.field;
  }
}

export type InviteErrorCode =
  /** The text does not start with 'fedit-invite:'. */
  | 'INVITE_PREFIX'
  /** The text after the prefix is not base64url, or is too short to hold an invite. */
  | 'INVITE_ENCODING'
  /** The checksum does not match: the invite was mistyped, cut off or altered. */
  | 'INVITE_CHECKSUM'
  /** The invite was made by a newer fedit (unknown version). */
  | 'INVITE_VERSION'
  /** A field of the invite is missing or invalid; `field` names it. */
  | 'INVITE_FIELD'
  /** The invite's expiry time has passed. */
  | 'INVITE_EXPIRED';

/** An enrolment invite cannot be used; the message says what to do about it. */
export class InviteError extends FeditError {
  declare readonly code: InviteErrorCode;
  readonly field: string | undefined;

  constructor(code: InviteErrorCode, message: string, options?: { cause?: unknown; field?: string }) {
    super(code, message, options);
    this.field = options?.field;
  }
}
