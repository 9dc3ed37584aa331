// The canonical encoding of round records ("fedit-json-v1"): one byte string per value, so a
// record's hash does not depend on who serialised it or in which language.
//
//   values    null, true, false, strings, integers in [-(2^53 - 1), 2^53 - 1], arrays, objects.
//             Nothing else: no floating-point numbers (non-integers such as metrics or the
//             selection fraction are written as decimal strings, e.g. "0.1"), no undefined (omit
//             the key instead), NaN, Infinity, BigInt, Map, typed array or class instance.
//   objects   members in ascending order of the keys' UTF-8 bytes; keys unique
//   numbers   plain decimal integers: no exponent, fraction, leading zeros or '+'; -0 is 0
//   strings   as ECMAScript's JSON.stringify writes them: '"' and '\' escaped with '\', \b \f \n
//             \r \t, other characters below U+0020 as \u00xx (lowercase hex), every other
//             character as itself (non-ASCII included); a string with a lone surrogate is refused
//   layout    no whitespace outside strings; ',' and ':' as separators
//   bytes     the UTF-8 encoding of that text, no byte order mark, no trailing newline
//
// In Python, json.dumps(value, ensure_ascii=False, separators=(',', ':'), sort_keys=True)
// .encode('utf-8') produces the same bytes for every value this encoding admits.

import { compareUtf8 } from '../aggregation/rule.ts';
import { RoundLogError } from './round-error.ts';

/** A value the canonical encoding admits. */
export type CanonicalValue =
  null | boolean | number | string | readonly CanonicalValue[] | { readonly [key: string]: CanonicalValue };

export type CanonicalObject = { readonly [key: string]: CanonicalValue };

const encoder = new TextEncoder();
// In a /u pattern a surrogate pair is one code point, so this only matches unpaired surrogates.
const LONE_SURROGATE = /\p{Surrogate}/u;

/** The canonical text of `value`; throws RoundLogError naming the path of anything it cannot encode. */
export function canonicalJson(value: unknown): string {
  return encode(value, '$');
}

/** The canonical bytes of `value` (UTF-8 of canonicalJson). */
export function canonicalBytes(value: unknown): Uint8Array {
  return encoder.encode(canonicalJson(value));
}

function encode(value: unknown, path: string): string {
  switch (typeof value) {
    case 'string':
      if (LONE_SURROGATE.test(value)) throw refuse(path, 'is a string with a lone UTF-16 surrogate');
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(value)) {
        throw refuse(
          path,
          `is the number ${value}; only integers up to 2^53 - 1 are encoded, write other numbers as decimal strings`,
        );
      }
      return String(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((item, i) => encode(item, `${path}[${i}]`)).join(',')}]`;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        throw refuse(
          path,
          `is a ${value.constructor?.name ?? 'non-plain object'}; only plain objects are encoded`,
        );
      }
      const keys = Object.keys(value).sort(compareUtf8);
      const members = keys.map((key) => {
        const member = (value as Record<string, unknown>)[key];
        if (member === undefined) throw refuse(`${path}.${key}`, 'is undefined; leave the key out instead');
        return `${encode(key, `${path} key`)}:${encode(member, `${path}.${key}`)}`;
      });
      return `{${members.join(',')}}`;
    }
    default:
      throw refuse(
        path,
        `is ${value === undefined ? 'undefined' : `a ${typeof value}`}, which has no canonical encoding`,
      );
  }
}

/**
 * A finite number as the decimal string records and hashed configs write it: the shortest digits
 * that read back as the same binary64 (ECMAScript Number::toString, Python's repr) in positional
 * notation, never an exponent: 0.0003 -> "0.0003", 1e-7 -> "0.0000001", 1e21 ->
 * "1000000000000000000000", -0 -> "0". In Python: format(decimal.Decimal(repr(x)), 'f').
 */
export function decimalString(value: number): string {
  if (!Number.isFinite(value)) {
    throw new RoundLogError('ROUND_RECORD_CANONICAL', `${value} has no decimal string`);
  }
  const text = String(Math.abs(value));
  const sign = value < 0 ? '-' : '';
  const match = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!match) return sign + text;
  const digits = match[1] + (match[2] ?? '');
  const exponent = Number(match[3]);
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const whole = exponent + 1;
  if (digits.length <= whole) return sign + digits.padEnd(whole, '0');
  return `${sign}${digits.slice(0, whole)}.${digits.slice(whole)}`;
}

/**
 * `value` with every number that is not a safe integer replaced by its decimalString, so that a
 * JSON document holding floats (a federation config) has a canonical encoding. Integers stay
 * numbers: 16 and 16.0 are the same JSON number and are written 16.
 */
export function withDecimalStrings(value: unknown): unknown {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : decimalString(value);
  if (Array.isArray(value)) return value.map(withDecimalStrings);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withDecimalStrings(v)]));
  }
  return value;
}

function refuse(path: string, why: string): RoundLogError {
  return new RoundLogError('ROUND_RECORD_CANONICAL', `${path} ${why}`);
}
