// The schema module's scalar building blocks: numbers, bytes, text, patterns and literal choices
// (schema.ts explains the module and holds the composites).
import { describe, plainBytes } from '../crypto/bytes.ts';
import { fail, present, type Schema, type SchemaErrorKind } from './core.ts';

const CONTROL_CHARACTER = /\p{Cc}/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// ---- scalars -----------------------------------------------------------------------------------

/** An integer from `min` to `max` inclusive (never NaN, never a float). */
export function int(min: number, max: number): Schema<number> {
  return {
    parse(value, path) {
      present(value, path);
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        fail('TYPE', path, `${path} must be an integer, got ${describe(value)}`);
      }
      if (value < min || value > max)
        fail('RANGE', path, `${path} must be from ${min} to ${max}, got ${value}`);
      return value;
    },
  };
}

/** A finite number above `above` (exclusive) and at most `max`. */
export function number(range: { above: number; max: number }): Schema<number> {
  const expected = `a number above ${range.above} and at most ${range.max}`;
  return {
    parse(value, path) {
      present(value, path);
      // Written as negations so NaN fails them.
      if (typeof value !== 'number' || !(value > range.above) || !(value <= range.max)) {
        fail(
          typeof value === 'number' ? 'RANGE' : 'TYPE',
          path,
          `${path} must be ${expected}, got ${describe(value)}`,
        );
      }
      return value;
    },
  };
}

/** `min` to `max` bytes (exactly `min` when `max` is left out), as a plain Uint8Array view. */
export function bytes(min: number, max = min): Schema<Uint8Array> {
  const expected = min === max ? `exactly ${min} bytes` : `${min} to ${max} bytes`;
  return {
    parse(value, path) {
      present(value, path);
      if (!(value instanceof Uint8Array)) fail('TYPE', path, `${path} must be bytes, got ${describe(value)}`);
      if (value.byteLength < min || value.byteLength > max) {
        fail('RANGE', path, `${path} must be ${expected}, got ${value.byteLength}`);
      }
      return plainBytes(value);
    },
  };
}

/** Text of `min` to `max` UTF-16 code units, without control characters or lone surrogates. */
export function text(min: number, max: number): Schema<string> {
  return {
    parse(value, path) {
      const s = string(value, path);
      if (s.length < min || s.length > max) {
        fail('RANGE', path, `${path} must be ${min} to ${max} characters long, got ${s.length}`);
      }
      if (CONTROL_CHARACTER.test(s) || LONE_SURROGATE.test(s)) {
        fail('FORMAT', path, `${path} holds a control character or an invalid UTF-16 sequence`);
      }
      return s;
    },
  };
}

/**
 * A string matching `regex` (anchored, and bounded in length by the regex itself); `form` says in
 * words what it must look like. T narrows the result, e.g. to ContentHash.
 */
export function pattern<T extends string = string>(regex: RegExp, form: string): Schema<T> {
  return {
    parse(value, path) {
      const s = string(value, path);
      if (!regex.test(s)) fail('FORMAT', path, `${path} must be ${form}, got ${describe(s)}`);
      return s as T;
    },
  };
}

function string(value: unknown, path: string): string {
  present(value, path);
  if (typeof value !== 'string') fail('TYPE', path, `${path} must be a string, got ${describe(value)}`);
  return value;
}

/** A value `oneOf` can list. */
export type Literal = string | number | boolean;

export interface OneOfOptions {
  /** The kind of a wrong value (default FORMAT). */
  kind?: SchemaErrorKind;
  /** What the value must be, in words (default: the values, or "one of" them). */
  expected?: string;
  /** A sentence appended after "; ", e.g. what a wrong value means for the person reading it. */
  hint?: string;
}

/** One of a fixed set of values (a tag, a version, an enum). */
export function oneOf<const V extends readonly Literal[]>(
  values: V,
  options: OneOfOptions = {},
): Schema<V[number]> & { readonly values: V } {
  const expected =
    options.expected ?? (values.length === 1 ? String(values[0]) : `one of ${values.join(', ')}`);
  const hint = options.hint === undefined ? '' : `; ${options.hint}`;
  return {
    values,
    parse(value, path) {
      present(value, path);
      if (!values.includes(value as Literal)) {
        fail(options.kind ?? 'FORMAT', path, `${path} must be ${expected}, got ${describe(value)}${hint}`);
      }
      return value as V[number];
    },
  };
}

/** Exactly `value`. */
export function literal<const V extends Literal>(value: V, options: OneOfOptions = {}) {
  return oneOf([value] as const, options);
}
