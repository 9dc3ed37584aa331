// The schema module (schema/schema.ts) on its own: what every declaration guarantees at an edge.
import test from 'ava';
import { SchemaError, schema, type Infer } from '@fedit/shared';

const {
  bytes,
  dictionary,
  fail,
  int,
  list,
  literal,
  object,
  optional,
  predicate,
  refine,
  rooted,
  text,
  union,
  withDefault,
} = schema;

function failure(run: () => unknown): SchemaError {
  try {
    run();
  } catch (error) {
    if (error instanceof SchemaError) return error;
    throw error;
  }
  throw new Error('expected a SchemaError');
}

test('an object refuses a field it does not declare, naming it and the fields it expects', (t) => {
  const point = object({ x: int(0, 9), y: int(0, 9) });
  const error = failure(() => point.parse({ x: 1, y: 2, z: 3 }, 'p'));
  t.like(error, { kind: 'UNKNOWN_FIELD', field: 'p.z' });
  t.is(error.message, 'p.z is not a field of this message (expected: x, y)');
  t.is(
    failure(() => object({}, { noun: 'record' }).parse({ a: 1 }, 'r')).message,
    'r.a is not a field of this record (expected: )',
  );
});

test('parse returns a fresh object with the declared fields only, in declared order', (t) => {
  const point = object({ y: int(0, 9), x: int(0, 9) });
  const input = { x: 1, y: 2 };
  const output = point.parse(input, 'p');
  t.not(output as unknown, input);
  t.deepEqual(Object.keys(output), ['y', 'x']);
});

test('an optional field may be absent and then stays absent; present, it is checked', (t) => {
  const note = object({ text: text(1, 10), by: optional(text(1, 10)) });
  t.false('by' in note.parse({ text: 'hi' }, 'n'));
  t.deepEqual(note.parse({ text: 'hi', by: 'me' }, 'n'), { text: 'hi', by: 'me' });
  t.like(
    failure(() => note.parse({ text: 'hi', by: '' }, 'n')),
    { kind: 'RANGE', field: 'n.by' },
  );
});

test('a list over its bound is refused before any item is looked at', (t) => {
  let checked = 0;
  const counted = { parse: (value: unknown) => (checked++, value) };
  const error = failure(() => list(counted, 0, 3).parse([1, 2, 3, 4], 'xs'));
  t.like(error, { kind: 'RANGE', field: 'xs', message: 'xs must hold 0 to 3 entries, got 4' });
  t.is(checked, 0);
});

test('errors name the path down to a list item inside an object', (t) => {
  const batch = object({ items: list(object({ n: int(0, 5) }), 0, 10) });
  const error = failure(() => batch.parse({ items: [{ n: 1 }, { n: 2 }, { n: 6 }] }, 'payload'));
  t.like(error, { kind: 'RANGE', field: 'payload.items[2].n' });
  t.true(error.message.startsWith('payload.items[2].n '));
});

test('bytes are length-checked and come back as a plain Uint8Array over the same memory', (t) => {
  const key = bytes(4);
  const buffer = Buffer.from([1, 2, 3, 4]);
  const parsed = key.parse(buffer, 'key');
  t.is(parsed.constructor, Uint8Array);
  t.is(parsed.buffer, buffer.buffer);
  t.is(failure(() => key.parse(new Uint8Array(5), 'key')).message, 'key must be exactly 4 bytes, got 5');
  t.is(failure(() => bytes(1, 3).parse('abc', 'b')).message, 'b must be bytes, got "abc"');
});

test('a missing value is MISSING, a value of the wrong type TYPE', (t) => {
  t.like(
    failure(() => int(0, 1).parse(undefined, 'n')),
    { kind: 'MISSING', message: 'n is required' },
  );
  t.like(
    failure(() => int(0, 1).parse(0.5, 'n')),
    { kind: 'TYPE', message: 'n must be an integer, got 0.5' },
  );
  t.like(
    failure(() => object({}).parse([], 'm')),
    { kind: 'TYPE', message: 'm must be a map, got an array' },
  );
});

test('refine checks across fields after they are valid, and keeps the declared shape', (t) => {
  const range = refine(object({ from: int(0, 9), to: int(0, 9) }), (r, path) => {
    if (r.from > r.to) fail('INCONSISTENT', `${path}.to`, `${path}.to must not be below ${path}.from`);
  });
  t.deepEqual(Object.keys(range.shape), ['from', 'to']);
  t.like(
    failure(() => range.parse({ from: 5, to: 2 }, 'r')),
    { kind: 'INCONSISTENT', field: 'r.to' },
  );
  t.like(
    failure(() => range.parse({ from: 5, to: 'x' }, 'r')),
    { kind: 'TYPE', field: 'r.to' },
  );
});

test('a union picks the option whose tag matches, and reports against the last option otherwise', (t) => {
  const reply = union('ok', [
    object({ ok: literal(false), reason: text(1, 20) }),
    object({ ok: literal(true, { kind: 'TYPE', expected: 'true or false' }), value: int(0, 9) }),
  ]);
  t.deepEqual(reply.parse({ ok: false, reason: 'busy' }, 'r'), { ok: false, reason: 'busy' });
  t.deepEqual(reply.parse({ ok: true, value: 3 }, 'r'), { ok: true, value: 3 });
  t.like(
    failure(() => reply.parse({ ok: 'yes', value: 3 }, 'r')),
    {
      kind: 'TYPE',
      message: 'r.ok must be true or false, got "yes"',
    },
  );
  t.like(
    failure(() => reply.parse({ value: 3 }, 'r')),
    { kind: 'MISSING', field: 'r.ok' },
  );
});

test('a rooted document is reported under its own name, whatever its parent', (t) => {
  const message = object({ doc: rooted('doc', object({ n: int(0, 1) })) });
  t.like(
    failure(() => message.parse({ doc: { n: 2 } }, 'payload')),
    { field: 'doc.n' },
  );
});

test('text refuses control characters and lone surrogates', (t) => {
  t.like(
    failure(() => text(0, 9).parse('a\u0000', 't')),
    { kind: 'FORMAT' },
  );
  t.like(
    failure(() => text(0, 9).parse('a\uDC00', 't')),
    { kind: 'FORMAT' },
  );
  t.is(text(0, 9).parse('ü😀', 't'), 'ü😀');
});

test('the declared type is derived from the declaration', (t) => {
  const note = object({ text: text(1, 10), by: optional(text(1, 10)), tags: list(text(1, 5), 0, 3) });
  type Note = Infer<typeof note>;
  const minimal: Note = { text: 'hi', tags: [] };
  // @ts-expect-error a required field left out does not type-check
  const incomplete: Note = { tags: [] };
  t.deepEqual(note.parse(minimal, 'n'), minimal);
  t.truthy(incomplete);
});

test('an object may keep the fields it does not declare (a record body) or drop them (a config file)', (t) => {
  const input = { n: 1, later: { x: [1] } };
  const kept = object({ n: int(0, 9) }, { others: 'keep' }).parse(input, 'body');
  t.deepEqual(kept, input);
  t.not(kept as unknown, input);
  t.deepEqual(object({ n: int(0, 9) }, { others: 'drop' }).parse(input, 'config'), { n: 1 });
  // A kept field is still data, even when it is named like the prototype.
  const proto = object({}, { others: 'keep' }).parse(JSON.parse('{"__proto__":{"polluted":1}}'), 'b');
  t.is(Object.getPrototypeOf(proto), Object.prototype);
  t.deepEqual(Object.keys(proto), ['__proto__']);
  // Declared fields are checked all the same.
  t.like(
    failure(() => object({ n: int(0, 9) }, { others: 'keep' }).parse({ n: 10, m: 1 }, 'body')),
    { kind: 'RANGE', field: 'body.n' },
  );
});

test("an edge words its own faults: absent, not an object, not a field, and a predicate's problem", (t) => {
  const part = object(
    { seq: predicate<number>((v) => Number.isSafeInteger(v), 'is not an integer') },
    { wording: { notObject: 'is not an object', notAField: 'is not a field of round records' } },
  );
  t.like(
    failure(() => part.parse(undefined, 'r')),
    { kind: 'MISSING', message: 'r is not an object' },
  );
  t.like(
    failure(() => part.parse([], 'r')),
    { kind: 'TYPE', message: 'r is not an object' },
  );
  t.like(
    failure(() => part.parse({ seq: 1, x: 2 }, 'r')),
    { kind: 'UNKNOWN_FIELD', field: 'r.x', message: 'r.x is not a field of round records' },
  );
  t.like(
    failure(() => part.parse({ seq: 1.5 }, 'r')),
    { kind: 'FORMAT', field: 'r.seq', message: 'r.seq is not an integer' },
  );
  const withMissing = object({}, { wording: { missing: 'is missing: write it', notObject: 'is odd' } });
  t.is(failure(() => withMissing.parse(undefined, 'e')).message, 'e is missing: write it');
  t.is(
    failure(() => list(int(0, 1), 0, 1, { notList: 'is not an array' }).parse('x', 'l')).message,
    'l is not an array',
  );
  const named = predicate<string>(
    (v) => v === 'a',
    (v) => `is ${JSON.stringify(v)}, not "a"`,
  );
  t.is(failure(() => named.parse('b', 'k')).message, 'k is "b", not "a"');
});

test('below the root path the paths are the bare field names, and a root fault is only its sentence', (t) => {
  const config = object(
    { lora: object({ rank: int(1, 9) }) },
    { wording: { notObject: 'must be a JSON object' } },
  );
  t.like(
    failure(() => config.parse({ lora: { rank: 0 } }, '')),
    { field: 'lora.rank' },
  );
  const unknown = failure(() => config.parse({ lora: { rank: 1 }, x: 1 }, ''));
  t.is(unknown.field, 'x');
  t.regex(unknown.message, /^x is not a field of this message/);
  t.like(
    failure(() => config.parse(7, '')),
    { field: '', message: 'must be a JSON object' },
  );
});

test('a dictionary checks every value under its key, and withDefault fills an absent field', (t) => {
  const metrics = dictionary(int(0, 9), { notObject: 'is not an object' });
  t.deepEqual(metrics.parse({ a: 1, b: 2 }, 'm'), { a: 1, b: 2 });
  t.like(
    failure(() => metrics.parse({ a: 1, b: 20 }, 'm')),
    { field: 'm.b', kind: 'RANGE' },
  );
  t.is(failure(() => metrics.parse(null, 'm')).message, 'm is not an object');
  const flags = object({ on: withDefault(literal(true), true) });
  t.deepEqual(flags.parse({}, 'f'), { on: true });
  t.like(
    failure(() => flags.parse({ on: 1 }, 'f')),
    { field: 'f.on' },
  );
});
