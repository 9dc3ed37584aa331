// Byte helpers shared by the crypto wrappers: strict text encodings and length checks. Strict
// means one text per byte string: Buffer.from(text, 'base64url') silently skips characters it
// does not know and ignores trailing bits, so two different texts could name the same key.
import { CryptoError } from './errors.ts';

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const HEX = /^[0-9a-f]*$/;

/** Unpadded base64url (RFC 4648 §5) of `bytes`. */
export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Decodes unpadded base64url, rejecting any other character, padding, and non-canonical texts
 * (unused trailing bits set). With `length`, the result must have exactly that many bytes.
 */
export function fromBase64url(text: unknown, field: string, length?: number): Uint8Array {
  if (typeof text !== 'string') {
    throw new CryptoError('CRYPTO_ENCODING', `${field} must be a base64url string, got ${describe(text)}`, {
      field,
    });
  }
  if (!BASE64URL.test(text) || text.length % 4 === 1) {
    throw new CryptoError(
      'CRYPTO_ENCODING',
      `${field} is not unpadded base64url (letters, digits, '-' and '_' only)`,
      { field },
    );
  }
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) {
    throw new CryptoError('CRYPTO_ENCODING', `${field} is not canonical base64url (stray trailing bits)`, {
      field,
    });
  }
  if (length !== undefined && bytes.byteLength !== length) {
    throw new CryptoError(
      'CRYPTO_ENCODING',
      `${field} must encode ${length} bytes, but encodes ${bytes.byteLength}`,
      { field },
    );
  }
  return new Uint8Array(bytes);
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Decodes lowercase hex of exactly `length` bytes. */
export function fromHex(text: unknown, field: string, length: number): Uint8Array {
  if (typeof text !== 'string' || text.length !== length * 2 || !HEX.test(text)) {
    throw new CryptoError(
      'CRYPTO_ENCODING',
      `${field} must be ${length * 2} lowercase hex digits, got ${describe(text)}`,
      { field },
    );
  }
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** Throws CryptoError unless `value` is a Uint8Array of exactly `length` bytes. */
export function assertBytes(value: unknown, length: number, field: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new CryptoError(
      'CRYPTO_LENGTH',
      `${field} must be a Uint8Array of ${length} bytes, got ${describe(value)}`,
      {
        field,
      },
    );
  }
  if (value.byteLength !== length) {
    throw new CryptoError('CRYPTO_LENGTH', `${field} must be ${length} bytes, got ${value.byteLength}`, {
      field,
    });
  }
}

/** Constant-time equality of two byte strings (length is not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let difference = 0;
  for (let i = 0; i < a.byteLength; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/** A plain Uint8Array over the same bytes (no copy); Buffers compare unequal to Uint8Arrays in tests. */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A short description of a value for error messages, never its contents. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  if (typeof value === 'string')
    return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return `the bigint ${value}`;
  if (typeof value === 'object') return value.constructor?.name ? `a ${value.constructor.name}` : 'an object';
  return typeof value;
}
