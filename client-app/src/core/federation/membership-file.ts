// The membership file (<home>/federations/<federation>.json) as read: every field checked, a
// corrupted file an error naming the file and the first field at fault ("participantId is missing
// or invalid (\"x\")"); a field a newer fedit wrote is dropped, not refused. Written by store.ts.
import {
  CONTENT_HASH_PATTERN,
  CryptoError,
  FEDERATION_ID_PATTERN,
  PARTICIPANT_ID_PATTERN,
  SchemaError,
  coordinatorUrl,
  parsePublicIdentity,
  schema,
  type ContentHash,
  type PublicIdentity,
  type Schema,
} from '@fedit/shared';
import { corruptedHomeFile } from './errors.ts';
import type { Membership } from './store.ts';

/** Text that is not empty (and matches `pattern` when given), in the file's wording. */
const textField = <T extends string = string>(pattern?: RegExp): Schema<T> =>
  schema.predicate<T>(
    (v) => typeof v === 'string' && v.length > 0 && (pattern === undefined || pattern.test(v)),
    (v) => `is missing or invalid (${JSON.stringify(v)})`,
  );

/** The coordinator's public keys, stored as base64url text, decoded and checked for length. */
const coordinatorKeys: Schema<PublicIdentity> = {
  parse(value, path) {
    try {
      return parsePublicIdentity(value, path);
    } catch (error) {
      if (!(error instanceof CryptoError)) throw error;
      return schema.fail('FORMAT', error.field ?? path, error.message);
    }
  },
};

/** An ISO date, read as ms since the epoch. */
const dateField: Schema<number> = {
  parse(value, path) {
    const time = Date.parse(textField().parse(value, path));
    if (!Number.isFinite(time)) schema.fail('FORMAT', path, `${path} ${JSON.stringify(value)} is not a date`);
    return time;
  },
};

/** A membership file as read; a field a newer fedit wrote is dropped, not refused. */
const membershipFile = schema.object(
  {
    version: schema.literal(1),
    federation: textField(FEDERATION_ID_PATTERN),
    /** The invite's rule for the coordinator's URL. */
    url: coordinatorUrl,
    coordinator: coordinatorKeys,
    participantId: textField(PARTICIPANT_ID_PATTERN),
    displayName: textField(),
    joinedAt: dateField,
    configHash: textField<ContentHash>(CONTENT_HASH_PATTERN),
    config: textField(),
    rank: schema.optional(schema.int(1, 1 << 16)),
  },
  { others: 'drop', wording: { notObject: 'it is not a JSON object' } },
);

/**
 * Parses a membership file's text; `path` names it in errors. Throws FEDERATION_HOME saying the
 * file is corrupted and naming the first field at fault.
 */
export function parseMembership(text: string, path: string): Membership {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw corruptedHomeFile(path, `it is not valid JSON (${(error as Error).message})`, error);
  }
  try {
    const { version: _version, ...membership } = membershipFile.parse(value, '');
    return membership satisfies Membership;
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    throw corruptedHomeFile(path, error.message, error);
  }
}
