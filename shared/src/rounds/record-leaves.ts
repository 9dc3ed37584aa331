// The leaves of round-record shapes (record-shape.ts and record-shape-secagg.ts declare the
// bodies from them): predicates in the records' wording ("is not a positive integer"), the
// forms of hashes and times, and the recorded envelope every counted update and masked input
// carries. One module both shape files import, so that neither imports the other.

import { SIGNATURE_BYTES, SIGN_PUBLIC_KEY_BYTES } from '../crypto/sign.ts';
import { signedEnvelope } from '../protocol/messages.ts';
import { isRecord, list, object, predicate, type Schema, type Shape } from '../schema/schema.ts';
import { isSeedChainValue } from './seed-chain.ts';

export const HASH = /^sha256:[0-9a-f]{64}$/;
export const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const FRACTION = /^(?:0\.\d*[1-9]\d*|1(?:\.0+)?)$/;
export const FACTOR = /^[1-9]\d*(?:\.\d*[1-9])?$/;

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

export const isNot = <T>(accepts: (value: unknown) => boolean, what: string): Schema<T> =>
  predicate<T>(accepts, `is not ${what}`);

export const count = isNot<number>(
  (v) => Number.isSafeInteger(v) && (v as number) >= 0,
  'a non-negative integer',
);
export const positive = isNot<number>(
  (v) => Number.isSafeInteger(v) && (v as number) > 0,
  'a positive integer',
);
export const name = isNot<string>((v) => typeof v === 'string' && v.length > 0, 'a non-empty string');
export const words = isNot<string>((v) => typeof v === 'string', 'a string');
export const hash = isNot<string>(isRecordHash, 'a content hash "sha256:" + 64 lowercase hex digits');
export const time = isNot<string>(isRecordTime, 'a UTC time "YYYY-MM-DDTHH:MM:SS.sssZ"');
export const chainValue = isNot<string>(isSeedChainValue, 'a seed chain value (64 lowercase hex digits)');
export const fraction = isNot<string>(
  (v) => typeof v === 'string' && FRACTION.test(v),
  'a decimal string in (0, 1] such as "0.5"',
);
export const factor = isNot<string>(
  (v) => typeof v === 'string' && FACTOR.test(v),
  'a decimal string of at least 1 such as "1.3"',
);
/** An object the log keeps opaque: its content is the rule's or the operator's. */
export const opaque = <T>() => isNot<T>(isRecord, 'an object');
/** Byte strings are lowercase hex in records (canonical JSON has no byte strings). */
export const hexBytes = (length: number, what: string) => {
  const form = new RegExp(`^[0-9a-f]{${2 * length}}$`);
  return isNot<string>(
    (v) => typeof v === 'string' && form.test(v),
    `${2 * length} lowercase hex digits (${what})`,
  );
};
export const signature = hexBytes(SIGNATURE_BYTES, 'an Ed25519 signature');
export const metric = predicate<string | number>(
  (v) => typeof v === 'string' || Number.isSafeInteger(v),
  'is neither an integer nor a string (write floats as decimal strings)',
);

export const NOT_AN_OBJECT = { notObject: 'is not an object' };
/** A part of a body: unknown fields are kept, since the record's hash covers them. */
export const part = <S extends Shape>(shape: S) => object(shape, { others: 'keep', wording: NOT_AN_OBJECT });
export const entries = <T>(item: Schema<T>) =>
  list(item, 0, Number.MAX_SAFE_INTEGER, { notList: 'is not an array' });

// A recorded envelope is the signed one (protocol/messages.ts) without its tensor schema, which
// the stored update determines (envelope-record.ts), and with its byte strings in hex.
const { tensorSchema: _determinedByTheUpdate, ...signedFields } = signedEnvelope.shape;

/** A counted update's signed envelope in a round-closed record; see envelope-record.ts. */
export const recordedEnvelope = object(
  {
    ...signedFields,
    /** Hex of the participant's Ed25519 public key, as its enrol record writes it. */
    participant: hexBytes(SIGN_PUBLIC_KEY_BYTES, 'an Ed25519 public key'),
    /** Hex of the participant's Ed25519 signature of the envelope digest. */
    signature,
  },
  {
    wording: {
      ...NOT_AN_OBJECT,
      missing:
        "is missing: every counted update records its participant's signed envelope (a log from a development version that did not record it cannot be audited)",
      notAField: 'is not a field of recorded envelopes',
    },
  },
);
