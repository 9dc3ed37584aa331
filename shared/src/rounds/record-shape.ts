// The shape of a round record as read from a log: every field, its type and form, and the body of
// its kind (record.ts defines them). The first check a record meets, before its hash or any rule:
// a record that fails it is named by field path (ROUND_RECORD_SHAPE) and judged no further.

import { ENVELOPE_FIELDS } from '../protocol/validate.ts';
import { ROUND_RECORD_KINDS, type RoundRecord, type RoundRecordKind } from './record.ts';
import { RoundLogError } from './round-error.ts';

const HASH = /^sha256:[0-9a-f]{64}$/;
const SIGNATURE = /^[0-9a-f]{128}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FRACTION = /^(?:0\.\d*[1-9]\d*|1(?:\.0+)?)$/;

/** Whether `value` is a content hash as records write them ("sha256:" + 64 lowercase hex). */
export function isRecordHash(value: unknown): value is string {
  return typeof value === 'string' && HASH.test(value);
}

/** Whether `value` is a record time ("YYYY-MM-DDTHH:MM:SS.sssZ", a real instant). */
export function isRecordTime(value: unknown): value is string {
  if (typeof value !== 'string' || !TIME.test(value)) return false;
  const date = new Date(value);
  return !Number.isNaN(date.getTime()) && date.toISOString() === value;
}

/**
 * Checks that `value` has the shape of a round record (every field, its type and form, the body
 * of its kind) and returns it typed. Throws RoundLogError('ROUND_RECORD_SHAPE') naming the field.
 * Unknown fields in a body are kept (they are part of the hash); unknown top-level fields are not.
 */
export function parseRoundRecord(value: unknown, label = 'record'): RoundRecord {
  const r = object(value, label);
  const allowed = new Set([
    'seq',
    'federation',
    'round',
    'kind',
    'prevHash',
    'time',
    'body',
    'hash',
    'signature',
  ]);
  for (const key of Object.keys(r)) {
    if (!allowed.has(key)) throw shape(`${label}.${key}`, 'is not a field of round records');
  }
  count(r.seq, `${label}.seq`);
  text(r.federation, `${label}.federation`);
  count(r.round, `${label}.round`);
  if (!(ROUND_RECORD_KINDS as readonly unknown[]).includes(r.kind)) {
    throw shape(`${label}.kind`, `is ${JSON.stringify(r.kind)}; kinds are ${ROUND_RECORD_KINDS.join(', ')}`);
  }
  hash(r.prevHash, `${label}.prevHash`);
  if (!isRecordTime(r.time)) throw shape(`${label}.time`, 'is not a UTC time "YYYY-MM-DDTHH:MM:SS.sssZ"');
  hash(r.hash, `${label}.hash`);
  if (typeof r.signature !== 'string' || !SIGNATURE.test(r.signature)) {
    throw shape(`${label}.signature`, 'is not 128 lowercase hex digits (an Ed25519 signature)');
  }
  BODY_CHECKS[r.kind as RoundRecordKind](object(r.body, `${label}.body`), `${label}.body`);
  return value as RoundRecord;
}

const BODY_CHECKS: { [K in RoundRecordKind]: (body: Record<string, unknown>, path: string) => void } = {
  config(b, path) {
    object(b.settings, `${path}.settings`);
    if (b.globalAdapter !== undefined) hash(b.globalAdapter, `${path}.globalAdapter`);
  },
  enrol(b, path) {
    text(b.participant, `${path}.participant`);
    text(b.publicKey, `${path}.publicKey`);
    if (b.boxKey !== undefined) text(b.boxKey, `${path}.boxKey`);
    if (b.displayName !== undefined) string(b.displayName, `${path}.displayName`);
  },
  revoke(b, path) {
    text(b.participant, `${path}.participant`);
    string(b.reason, `${path}.reason`);
  },
  'round-open'(b, path) {
    ruleRef(b.rule, `${path}.rule`);
    selection(b.selection, `${path}.selection`);
    hash(b.globalAdapter, `${path}.globalAdapter`);
    if (!isRecordTime(b.deadline))
      throw shape(`${path}.deadline`, 'is not a UTC time "YYYY-MM-DDTHH:MM:SS.sssZ"');
  },
  'round-closed'(b, path) {
    ruleRef(b.rule, `${path}.rule`);
    selection(b.selection, `${path}.selection`);
    array(b.updates, `${path}.updates`).forEach((u, i) => {
      const p = `${path}.updates[${i}]`;
      const update = object(u, p);
      text(update.participant, `${p}.participant`);
      hash(update.envelopeDigest, `${p}.envelopeDigest`);
      if (!Number.isSafeInteger(update.exampleCount) || (update.exampleCount as number) <= 0) {
        throw shape(`${p}.exampleCount`, 'is not a positive integer');
      }
      hash(update.updateHash, `${p}.updateHash`);
      if (update.envelope === undefined) {
        throw shape(
          `${p}.envelope`,
          "is missing: every counted update records its participant's signed envelope (a log from a development version that did not record it cannot be audited)",
        );
      }
      recordedEnvelope(update.envelope, `${p}.envelope`);
    });
    hash(b.globalAdapterIn, `${path}.globalAdapterIn`);
    hash(b.globalAdapterOut, `${path}.globalAdapterOut`);
    dropped(b.dropped, `${path}.dropped`);
    const metrics = object(b.metrics, `${path}.metrics`);
    for (const [key, v] of Object.entries(metrics)) {
      if (typeof v !== 'string' && !Number.isSafeInteger(v)) {
        throw shape(
          `${path}.metrics.${key}`,
          'is neither an integer nor a string (write floats as decimal strings)',
        );
      }
    }
  },
  'round-aborted'(b, path) {
    string(b.reason, `${path}.reason`);
    dropped(b.dropped, `${path}.dropped`);
  },
};

// A recorded envelope is the signed one without its tensor schema, which the stored update
// determines (and which would add kilobytes per participant to every record).
const RECORDED_ENVELOPE_FIELDS: readonly string[] = [
  ...ENVELOPE_FIELDS.filter((f) => f !== 'tensorSchema'),
  'signature',
];

function recordedEnvelope(value: unknown, path: string): void {
  const e = object(value, path);
  for (const key of Object.keys(e)) {
    if (!RECORDED_ENVELOPE_FIELDS.includes(key))
      throw shape(`${path}.${key}`, 'is not a field of recorded envelopes');
  }
  for (const key of [
    'version',
    'round',
    'exampleCount',
    'payloadBytes',
    'chunkBytes',
    'chunkCount',
    'createdAt',
  ]) {
    count(e[key], `${path}.${key}`);
  }
  text(e.federation, `${path}.federation`);
  if (typeof e.participant !== 'string' || !/^[0-9a-f]{64}$/.test(e.participant)) {
    throw shape(`${path}.participant`, 'is not 64 lowercase hex digits (an Ed25519 public key)');
  }
  hash(e.globalAdapterHash, `${path}.globalAdapterHash`);
  hash(e.payloadHash, `${path}.payloadHash`);
  if (typeof e.signature !== 'string' || !SIGNATURE.test(e.signature)) {
    throw shape(`${path}.signature`, 'is not 128 lowercase hex digits (an Ed25519 signature)');
  }
}

function ruleRef(value: unknown, path: string): void {
  const rule = object(value, path);
  text(rule.name, `${path}.name`);
  object(rule.config, `${path}.config`);
}

function selection(value: unknown, path: string): void {
  const s = object(value, path);
  text(s.seed, `${path}.seed`);
  if (typeof s.fraction !== 'string' || !FRACTION.test(s.fraction)) {
    throw shape(`${path}.fraction`, 'is not a decimal string in (0, 1] such as "0.5"');
  }
  count(s.minimum, `${path}.minimum`);
  array(s.selected, `${path}.selected`).forEach((id, i) => text(id, `${path}.selected[${i}]`));
}

function dropped(value: unknown, path: string): void {
  array(value, path).forEach((d, i) => {
    const entry = object(d, `${path}[${i}]`);
    text(entry.participant, `${path}[${i}].participant`);
    string(entry.reason, `${path}[${i}].reason`);
  });
}

function object(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw shape(path, 'is not an object');
  return value as Record<string, unknown>;
}

function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw shape(path, 'is not an array');
  return value;
}

function string(value: unknown, path: string): void {
  if (typeof value !== 'string') throw shape(path, 'is not a string');
}

function text(value: unknown, path: string): void {
  if (typeof value !== 'string' || value.length === 0) throw shape(path, 'is not a non-empty string');
}

function count(value: unknown, path: string): void {
  if (!Number.isSafeInteger(value) || (value as number) < 0)
    throw shape(path, 'is not a non-negative integer');
}

function hash(value: unknown, path: string): void {
  if (!isRecordHash(value)) throw shape(path, 'is not a content hash "sha256:" + 64 lowercase hex digits');
}

function shape(path: string, why: string): RoundLogError {
  return new RoundLogError('ROUND_RECORD_SHAPE', `${path} ${why}`);
}
