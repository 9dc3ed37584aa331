// One-time enrolment invites: everything a participant needs to join a federation, in one string
// an operator can paste into an email or chat:
//
//   "fedit-invite:" base64url( body || checksum )
//   body     = MessagePack map { v: 1, url, fed, sign, box, token, exp? }
//   checksum = first 4 bytes of SHA-256("fedit/invite/v1" || body)
//
// The checksum only catches mistakes (a mistyped or truncated paste), it is not a signature: the
// invite's authenticity rests on the channel the operator sends it through. The token is a
// 32-byte random secret the coordinator accepts once, at enrolment.
import { randomBytes } from 'node:crypto';
import { packWire, unpackWire } from '../protocol/codec.ts';
import { FEDERATION_ID_PATTERN, MAX_TIMESTAMP_MS, MAX_URL_LENGTH } from '../protocol/limits.ts';
import { SchemaError, fail as schemaFail, type Schema } from '../schema/schema.ts';
import { describe, plainBytes, toBase64url } from './bytes.ts';
import { sha256 } from './digest.ts';
import { InviteError } from './errors.ts';
import { BOX_PUBLIC_KEY_BYTES, type PublicIdentity } from './identity.ts';
import { SIGN_PUBLIC_KEY_BYTES } from './sign.ts';

export const INVITE_PREFIX = 'fedit-invite:';
export const INVITE_TOKEN_BYTES = 32;
const CHECKSUM_BYTES = 4;
const CHECKSUM_TAG = Buffer.from('fedit/invite/v1');
const FIELDS = new Set(['v', 'url', 'fed', 'sign', 'box', 'token', 'exp']);

export interface Invite {
  /** Where the coordinator listens: an http: or https: URL. */
  url: string;
  federation: string;
  /** The coordinator's public keys: its signatures are checked and uploads sealed against them. */
  coordinator: PublicIdentity;
  /** The one-time enrolment secret (32 bytes). */
  token: Uint8Array;
  /** When the invite stops being accepted, in ms since the epoch; absent: never. */
  expiresAt?: number;
}

/** A fresh random invite token. */
export function createInviteToken(): Uint8Array {
  return new Uint8Array(randomBytes(INVITE_TOKEN_BYTES));
}

/** The invite string for `invite`, after checking every field as parseInvite would. */
export function formatInvite(invite: Invite): string {
  const body: Record<string, unknown> = {
    v: 1,
    url: invite.url,
    fed: invite.federation,
    sign: invite.coordinator.sign,
    box: invite.coordinator.box,
    token: invite.token,
  };
  if (invite.expiresAt !== undefined) body.exp = invite.expiresAt;
  checkBody(body);
  const packed = packWire(body, 'invite');
  const checksum = sha256(CHECKSUM_TAG, packed).subarray(0, CHECKSUM_BYTES);
  return INVITE_PREFIX + toBase64url(Buffer.concat([packed, checksum]));
}

/**
 * Parses an invite string as pasted: surrounding text whitespace and line breaks inside it (from
 * mail clients wrapping long lines) are ignored. Throws InviteError saying what is wrong and what
 * to do; an invite whose expiry is before `now` is refused with INVITE_EXPIRED.
 */
export function parseInvite(text: string, options: { now?: number } = {}): Invite {
  const compact = String(text).replace(/\s+/g, '');
  if (!compact.startsWith(INVITE_PREFIX)) {
    const shown = compact.length > 20 ? `${compact.slice(0, 20)}...` : compact;
    throw new InviteError(
      'INVITE_PREFIX',
      `this is not a fedit invite: an invite starts with "${INVITE_PREFIX}", this text starts with ${JSON.stringify(shown)}`,
    );
  }
  const encoded = compact.slice(INVITE_PREFIX.length);
  const bad = /[^A-Za-z0-9_-]/.exec(encoded);
  if (bad) {
    throw new InviteError(
      'INVITE_ENCODING',
      `the invite has a character that cannot be in one, ${JSON.stringify(bad[0])} at position ${INVITE_PREFIX.length + bad.index + 1}; copy the invite again`,
    );
  }
  const bytes = Buffer.from(encoded, 'base64url');
  if (bytes.byteLength <= CHECKSUM_BYTES) {
    throw new InviteError(
      'INVITE_ENCODING',
      'the invite is too short to be complete; copy the whole invite again',
    );
  }
  const packed = bytes.subarray(0, bytes.byteLength - CHECKSUM_BYTES);
  const checksum = bytes.subarray(bytes.byteLength - CHECKSUM_BYTES);
  if (Buffer.compare(sha256(CHECKSUM_TAG, packed).subarray(0, CHECKSUM_BYTES), checksum) !== 0) {
    throw new InviteError(
      'INVITE_CHECKSUM',
      'the invite is damaged: its checksum does not match, so it was mistyped, cut short or altered; copy it again exactly as the operator sent it',
    );
  }
  // Base64 decoding ignores the spare low bits of the last character, so a typo there can
  // decode to the same bytes and pass the checksum; only the canonical spelling is accepted.
  if (toBase64url(bytes) !== encoded) {
    throw new InviteError(
      'INVITE_ENCODING',
      'the invite is damaged: its last character was mistyped; copy the whole invite again',
    );
  }
  let body: unknown;
  try {
    body = unpackWire(packed, 'invite');
  } catch (cause) {
    throw new InviteError(
      'INVITE_FIELD',
      `the invite's contents cannot be read: ${(cause as Error).message}`,
      {
        cause,
        field: 'invite',
      },
    );
  }
  const record = checkBody(body);
  const invite: Invite = {
    url: record.url as string,
    federation: record.fed as string,
    coordinator: { sign: plainBytes(record.sign as Uint8Array), box: plainBytes(record.box as Uint8Array) },
    token: plainBytes(record.token as Uint8Array),
  };
  if (record.exp !== undefined) {
    invite.expiresAt = record.exp as number;
    const now = options.now ?? Date.now();
    if (now >= invite.expiresAt) {
      throw new InviteError(
        'INVITE_EXPIRED',
        `this invite to federation "${invite.federation}" expired on ${new Date(invite.expiresAt).toISOString()}; ask the operator for a new one`,
        { field: 'invite.expiresAt' },
      );
    }
  }
  return invite;
}

function checkBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Uint8Array) {
    fail('invite', `must be a map, got ${describe(body)}`);
  }
  const record = body as Record<string, unknown>;
  if (record.v !== 1) {
    throw new InviteError(
      'INVITE_VERSION',
      `this invite has format version ${describe(record.v)}, but this fedit reads version 1; update fedit`,
      { field: 'invite.version' },
    );
  }
  for (const key of Object.keys(record)) {
    if (!FIELDS.has(key)) fail(`invite.${key}`, 'is not a field of a version 1 invite');
  }
  checkUrl(record.url);
  if (typeof record.fed !== 'string' || !FEDERATION_ID_PATTERN.test(record.fed)) {
    fail(
      'invite.federation',
      `must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${describe(record.fed)}`,
    );
  }
  checkKey(record.sign, SIGN_PUBLIC_KEY_BYTES, 'invite.coordinator.sign');
  checkKey(record.box, BOX_PUBLIC_KEY_BYTES, 'invite.coordinator.box');
  checkKey(record.token, INVITE_TOKEN_BYTES, 'invite.token');
  if (
    record.exp !== undefined &&
    (typeof record.exp !== 'number' ||
      !Number.isSafeInteger(record.exp) ||
      record.exp < 0 ||
      record.exp > MAX_TIMESTAMP_MS)
  ) {
    fail('invite.expiresAt', `must be a time in ms since 1970, got ${describe(record.exp)}`);
  }
  return record;
}

/**
 * Where a coordinator listens: an http: or https: URL of 1 to MAX_URL_LENGTH characters. The rule
 * of an invite's url, and of every copy of it a participant keeps (its membership file).
 */
export const coordinatorUrl: Schema<string> = {
  parse(value, path) {
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_URL_LENGTH) {
      schemaFail(
        typeof value === 'string' ? 'RANGE' : 'TYPE',
        path,
        `${path} must be a URL of 1 to ${MAX_URL_LENGTH} characters, got ${describe(value)}`,
      );
    }
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return schemaFail('FORMAT', path, `${path} is not a valid URL: ${JSON.stringify(value)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      schemaFail(
        'FORMAT',
        path,
        `${path} must be an http: or https: URL, got ${JSON.stringify(url.protocol)}`,
      );
    }
    return value;
  },
};

function checkUrl(value: unknown): void {
  try {
    coordinatorUrl.parse(value, 'invite.url');
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    throw new InviteError('INVITE_FIELD', error.message, { field: error.field });
  }
}

function checkKey(value: unknown, length: number, field: string): void {
  if (!(value instanceof Uint8Array) || value.byteLength !== length) {
    fail(field, `must be ${length} bytes, got ${describe(value)}`);
  }
}

function fail(field: string, problem: string): never {
  throw new InviteError('INVITE_FIELD', `${field} ${problem}`, { field });
}
