// The schema module's core: the error every schema throws, the Schema interface and type
// inference, and the wording helpers every building block shares (schema.ts explains the module).

/** What is wrong with a value; an edge maps it to its own code (PROTOCOL_RANGE, ...). */
export type SchemaErrorKind = 'MISSING' | 'TYPE' | 'RANGE' | 'FORMAT' | 'UNKNOWN_FIELD' | 'INCONSISTENT';

/** A value does not fit its schema. `field` is the path at fault; the message starts with it. */
export class SchemaError extends Error {
  constructor(
    readonly kind: SchemaErrorKind,
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'SchemaError';
  }
}

/** Throws SchemaError; for the checks of `refine`. */
export function fail(kind: SchemaErrorKind, field: string, message: string): never {
  throw new SchemaError(kind, field, message);
}

export interface Schema<T> {
  /** `value` checked and copied to hold only what is declared; throws SchemaError naming `path`. */
  readonly parse: (value: unknown, path: string) => T;
}

/** A schema whose value may be absent (only meaningful as a field of `object`). */
export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optional: true;
}

/** The type a schema validates to. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

export type Shape = Readonly<Record<string, Schema<unknown>>>;

/** The object type of a shape: optional schemas become optional properties. */
export type InferShape<S extends Shape> = Flat<
  {
    -readonly [K in keyof S as S[K] extends OptionalSchema<unknown> ? never : K]: Infer<S[K]>;
  } & {
    -readonly [K in keyof S as S[K] extends OptionalSchema<unknown> ? K : never]?: Exclude<
      Infer<S[K]>,
      undefined
    >;
  }
>;

// One object type instead of an intersection, so editors and compiler errors show the fields.
type Flat<T> = { [K in keyof T]: T[K] } & unknown;

export interface ObjectSchema<S extends Shape> extends Schema<InferShape<S>> {
  readonly shape: S;
}

// The message about the value at `path`: its path, then why; just why for a root path ''.
export function at(path: string, why: string): string {
  return path === '' ? why : `${path} ${why}`;
}

export function present(value: unknown, path: string): void {
  if (value === undefined) absent(path);
}

// An absent value: an edge's own sentence for it, or "is required".
export function absent(path: string, why = 'is required'): never {
  fail('MISSING', path, at(path, why));
}
