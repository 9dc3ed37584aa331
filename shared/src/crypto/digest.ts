// SHA-256 and fedit's binary canonical encoding of structured data ("fedit-bin-v1"), the two
// halves of every digest the wire protocol signs (envelopes, auth proofs, enrolments). SHA-256
// comes from node:crypto (>1 GB/s) rather than a JavaScript implementation. Round records use a
// canonical JSON instead (rounds/canonical.ts), which has no byte strings.
//
// Binary canonical encoding, version 1 (docs/protocol.md has the table). Every value becomes one tag
// byte and its body; every variable-length body carries its length, so no two different values
// share an encoding, and the encoding depends on nothing but the value (not on msgpackr's
// version, key insertion order or float heuristics):
//
//   0x00                                   null
//   0x01 / 0x02                            false / true
//   0x03  i64 LE                           integer, -(2^53 - 1) .. 2^53 - 1
//   0x04  u32 LE length, UTF-8             string (well-formed Unicode only)
//   0x05  u32 LE length, bytes             byte string (Uint8Array)
//   0x06  u32 LE count, values             array
//   0x07  u32 LE count, (key, value)...    map: key = u32 LE length + UTF-8, strictly ascending
//                                          by UTF-8 bytes; properties whose value is undefined
//                                          are left out, as JSON.stringify does
//
// There is deliberately no float: the same number has several plausible encodings (float32 or
// float64, 1 or 1.0), and nothing fedit signs needs one. A value that is not representable is a
// bug in the caller and throws CRYPTO_CANONICAL naming where it sits.
import { createHash } from 'node:crypto';
import { CryptoError } from './errors.ts';

export const SHA256_BYTES = 32;

/** A value the canonical encoding can represent. */
export type BinaryCanonicalValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly BinaryCanonicalValue[]
  | { readonly [key: string]: BinaryCanonicalValue | undefined };

const MAX_DEPTH = 32;
const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** SHA-256 of the concatenation of `parts`, as a fresh 32-byte Uint8Array. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** SHA-256 of `data` as fedit's content-hash text, `sha256:<64 lowercase hex digits>`. */
export function sha256Hash(data: Uint8Array): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The binary canonical encoding (fedit-bin-v1) of `value`. */
export function binaryCanonical(value: BinaryCanonicalValue): Uint8Array {
  const parts: Uint8Array[] = [];
  encodeValue(value, parts, 'value', 0);
  return new Uint8Array(Buffer.concat(parts));
}

/** SHA-256 of the binary canonical encoding of `value`: the digest the wire protocol signs. */
export function binaryCanonicalDigest(value: BinaryCanonicalValue): Uint8Array {
  const parts: Uint8Array[] = [];
  encodeValue(value, parts, 'value', 0);
  return sha256(...parts);
}

function encodeValue(value: unknown, out: Uint8Array[], path: string, depth: number): void {
  if (depth > MAX_DEPTH) fail(path, `nests deeper than ${MAX_DEPTH} levels`);
  if (value === null) {
    out.push(Uint8Array.of(0x00));
  } else if (value === false || value === true) {
    out.push(Uint8Array.of(value ? 0x02 : 0x01));
  } else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      fail(path, `is ${value}; the canonical encoding holds only integers within ±(2^53 - 1), no floats`);
    }
    const body = new Uint8Array(9);
    body[0] = 0x03;
    new DataView(body.buffer).setBigInt64(1, BigInt(value), true);
    out.push(body);
  } else if (typeof value === 'string') {
    out.push(Uint8Array.of(0x04), ...lengthPrefixed(utf8(value, path)));
  } else if (value instanceof Uint8Array) {
    out.push(Uint8Array.of(0x05), ...lengthPrefixed(value));
  } else if (Array.isArray(value)) {
    out.push(Uint8Array.of(0x06), u32(value.length, path));
    value.forEach((item, i) => {
      if (item === undefined) fail(`${path}[${i}]`, 'is undefined; arrays may not have holes');
      encodeValue(item, out, `${path}[${i}]`, depth + 1);
    });
  } else if (isPlainObject(value)) {
    const entries = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .map((key) => ({ key, bytes: utf8(key, `${path}.${key}`) }))
      .sort((a, b) => Buffer.compare(a.bytes, b.bytes));
    out.push(Uint8Array.of(0x07), u32(entries.length, path));
    for (const { key, bytes } of entries) {
      out.push(...lengthPrefixed(bytes));
      encodeValue(value[key], out, `${path}.${key}`, depth + 1);
    }
  } else {
    fail(
      path,
      `is ${typeof value === 'object' ? `a ${value.constructor?.name ?? 'null-prototype object'}` : `a ${typeof value}`}; the canonical encoding holds null, booleans, integers, strings, Uint8Arrays, arrays and plain objects`,
    );
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

function utf8(text: string, path: string): Uint8Array {
  // TextEncoder turns a lone surrogate into U+FFFD, so two different strings would encode alike.
  if (LONE_SURROGATE.test(text)) fail(path, 'holds a lone UTF-16 surrogate, which has no UTF-8 form');
  return encoder.encode(text);
}

function lengthPrefixed(bytes: Uint8Array): [Uint8Array, Uint8Array] {
  return [u32(bytes.byteLength, 'length'), bytes];
}

function u32(value: number, path: string): Uint8Array {
  if (value > 0xffffffff) fail(path, 'is longer than 2^32 - 1 items or bytes');
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  return bytes;
}

function fail(path: string, problem: string): never {
  throw new CryptoError('CRYPTO_CANONICAL', `cannot encode canonically: ${path} ${problem}`, { field: path });
}
