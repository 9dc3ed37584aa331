// One way to declare and validate a message or record at fedit's edges. A declaration is the only
// place a field is named: the validator walks it, and the TypeScript type is derived from it.
//
//   export const tensorSpec = object({
//     name: text(1, MAX_TENSOR_NAME_LENGTH),
//     shape: list(int(1, MAX_TENSOR_DIM), 0, MAX_TENSOR_RANK),
//     dtype: oneOf(FLOAT_DTYPES),
//   });
//   export type TensorSpec = Infer<typeof tensorSpec>;
//   const spec = tensorSpec.parse(untrusted, 'envelope.tensorSchema[0]');
//
// What every schema guarantees, because the edge depends on it:
// - parse returns a fresh value holding only declared fields (an unknown field is refused, unless
//   the declaration says it is kept or dropped), so nothing undeclared reaches state or a digest;
// - sizes are checked before anything is allocated or walked (a list's length before its items,
//   a byte string's length before it is wrapped), so a hostile peer cannot make us do big work;
// - a failure throws SchemaError whose `field` is the path of the value at fault
//   ('envelope.tensorSchema[3].shape[1]') and whose message starts with that path.
//
// Adopting it for another edge: declare the shape, then turn SchemaError into that edge's error
// class in one place, as protocol/validate.ts (`PROTOCOL_${error.kind}`), rounds/record-shape.ts
// and federation/config.ts do. Rules that span fields go in `refine`, next to the declaration,
// and throw with `fail`. An edge with rules or wording of its own ("record.seq is not a
// non-negative integer") states them with `predicate` and an object's `wording`.
//
// Written here rather than taken from valibot or typebox because fedit's wire errors have a fixed
// form that peers and tests rely on (code + field path + a sentence), bytes are a first-class
// type, and the whole thing is small enough to read; see docs/architecture.md for its measured
// cost on the coordinator's hot path.
import { describe } from '../crypto/bytes.ts';
import {
  absent,
  at,
  fail,
  type Infer,
  type InferShape,
  type ObjectSchema,
  type OptionalSchema,
  type Schema,
  type SchemaErrorKind,
  type Shape,
} from './core.ts';
import type { Literal } from './scalars.ts';

export * from './core.ts';
export * from './scalars.ts';

// ---- composites --------------------------------------------------------------------------------

/** A list of `min` to `max` items, each checked by `item` (its path is `path[i]`); `wording` as for `object`. */
export function list<T>(
  item: Schema<T>,
  min: number,
  max: number,
  wording: { missing?: string; notList?: string } = {},
): Schema<T[]> {
  const { missing = wording.notList, notList } = wording;
  return {
    parse(value, path) {
      if (value === undefined) absent(path, missing);
      if (!Array.isArray(value))
        fail('TYPE', path, at(path, notList ?? `must be a list, got ${describe(value)}`));
      if (value.length < min || value.length > max) {
        fail('RANGE', path, `${path} must hold ${min} to ${max} entries, got ${value.length}`);
      }
      const out = new Array<T>(value.length);
      for (let i = 0; i < value.length; i++) out[i] = item.parse(value[i], `${path}[${i}]`);
      return out;
    },
  };
}

/** Marks a field of `object` as one that may be absent; an absent field stays absent. */
export function optional<T>(schema: Schema<T>): OptionalSchema<T> {
  return { optional: true, parse: schema.parse };
}

/** `schema`, or `value` when the field is absent (a field that older files leave out). */
export function withDefault<T>(schema: Schema<T>, value: T): Schema<T> {
  return { parse: (field, path) => (field === undefined ? value : schema.parse(field, path)) };
}

export interface ObjectOptions {
  /**
   * A field the shape does not declare is refused (the default: the wire), kept as it is (a round
   * record's body, whose every field is hashed and signed) or dropped (a config file).
   */
  others?: 'refuse' | 'keep' | 'drop';
  /** The noun of the default message about a refused field (default 'message'). */
  noun?: string;
  wording?: ObjectWording;
}

/** An edge's own sentences after the path, where the defaults are not its wording. */
export interface ObjectWording {
  /** An absent value (default: `notObject` when given, else "is required"). */
  missing?: string;
  /** Not a plain object (default "must be a map, got ..."). */
  notObject?: string;
  /** A refused field (default "is not a field of this <noun> (expected: ...)"). */
  notAField?: string;
}

/**
 * A plain object (MessagePack or JSON map) with the fields of `shape`, in the declared order, and
 * what `others` says about any other field. Paths below the root path '' are the bare field names.
 */
export function object<S extends Shape>(shape: S, options: ObjectOptions = {}): ObjectSchema<S> {
  // Parallel arrays and indexed loops: this runs for every message the coordinator receives.
  const keys = Object.keys(shape);
  const schemas = keys.map((key) => shape[key]);
  const optionals = schemas.map((schema) => (schema as Partial<OptionalSchema<unknown>>).optional === true);
  const others = options.others ?? 'refuse';
  const { notObject, missing = notObject, notAField } = options.wording ?? {};
  const refused =
    notAField ?? `is not a field of this ${options.noun ?? 'message'} (expected: ${keys.join(', ')})`;
  return {
    shape,
    parse(value, path) {
      if (value === undefined) absent(path, missing);
      if (!isRecord(value))
        fail('TYPE', path, at(path, notObject ?? `must be a map, got ${describe(value)}`));
      const prefix = path === '' ? '' : `${path}.`;
      if (others === 'refuse') {
        for (const key in value) {
          if (!Object.hasOwn(shape, key)) fail('UNKNOWN_FIELD', prefix + key, `${prefix}${key} ${refused}`);
        }
      }
      // Spread, not assignment, copies a kept field named __proto__ as the data it is.
      const out: Record<string, unknown> = others === 'keep' ? { ...value } : {};
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i];
        const field = value[key];
        if (optionals[i] && field === undefined) continue;
        out[key] = schemas[i].parse(field, prefix + key);
      }
      return out as InferShape<S>;
    },
  };
}

/**
 * A plain object whose keys are free (a record's metrics) and whose every value `value` checks
 * (its path is `path.key`); `wording` as for `object`.
 */
export function dictionary<T>(
  value: Schema<T>,
  wording: Pick<ObjectWording, 'missing' | 'notObject'> = {},
): Schema<Record<string, T>> {
  const entries = object({}, { others: 'keep', wording });
  return {
    parse(input, path) {
      const out: Record<string, T> = entries.parse(input, path);
      for (const key of Object.keys(out)) out[key] = value.parse(out[key], `${path}.${key}`);
      return out;
    },
  };
}

/**
 * A value `accepts` admits, in an edge's own rule and wording: `problem` is the sentence after the
 * path. The value comes back as it is: for scalars, or an object the edge keeps opaque.
 */
export function predicate<T>(
  accepts: (value: unknown) => boolean,
  problem: string | ((value: unknown) => string),
  kind: SchemaErrorKind = 'FORMAT',
): Schema<T> {
  return {
    parse(value, path) {
      if (!accepts(value)) fail(kind, path, at(path, typeof problem === 'string' ? problem : problem(value)));
      return value as T;
    },
  };
}

/**
 * Objects told apart by the tag field `key`: the option whose `key` literal matches is used; when
 * none matches, the last option reports what is wrong (so list the general case last).
 */
export function union<const O extends readonly ObjectSchema<Shape>[]>(
  key: string,
  options: O,
): Schema<Infer<O[number]>> {
  const tags = options.map((option) => (option.shape[key] as { values?: readonly Literal[] }).values ?? []);
  const fallback = options[options.length - 1];
  return {
    parse(value, path) {
      const tag = isRecord(value) ? value[key] : undefined;
      const index = tags.findIndex((values) => values.includes(tag as Literal));
      return (index < 0 ? fallback : options[index]).parse(value, path) as Infer<O[number]>;
    },
  };
}

/** `schema` followed by a check across its fields, which throws with `fail`. Keeps `shape`. */
export function refine<S extends Schema<unknown>>(
  schema: S,
  check: (value: Infer<S>, path: string) => void,
): S {
  return {
    ...schema,
    parse(value: unknown, path: string) {
      const parsed = schema.parse(value, path) as Infer<S>;
      check(parsed, path);
      return parsed;
    },
  };
}

/**
 * `schema`, reported under its own name `root` whatever its parent's path: for a document that
 * lives on by itself (the signed envelope is `envelope.*` in every message and in the log).
 */
export function rooted<T>(root: string, schema: Schema<T>): Schema<T> {
  return { parse: (value) => schema.parse(value, root) };
}

/** A plain object, not an array, class instance or null: what a MessagePack or JSON map decodes to. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}
