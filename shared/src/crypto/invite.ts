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
import {
  SchemaError,
  fail,
  isRecord,
  object,
  optional,
  predicate,
  refine,
  rooted,
  type Infer,
  type Schema,
} from '../schema/schema.ts';
import { describe, plainBytes, toBase64url } from './bytes.ts';
import { sha256 } from './digest.ts';
import { InviteError } from './errors.ts';
import { BOX_PUBLIC_KEY_BYTES, type PublicIdentity } from './identity.ts';
import { SIGN_PUBLIC_KEY_BYTES } from './sign.ts';

export const INVITE_PREFIX = 'fedit-invite:';
export const INVITE_TOKEN_BYTES = 32;
const CHECKSUM_BYTES = 4;
const CHECKSUM_TAG = Buffer.from('fedit/invite/v1');

export interface Invite {
  /** Where the coordinator listens: an http: or https: URL, its path "/" or "/<federation>". */
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
  const body: InviteBody = {
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
    url: record.url,
    federation: record.fed,
    coordinator: { sign: record.sign, box: record.box },
    token: record.token,
  };
  if (record.exp !== undefined) {
    invite.expiresAt = record.exp;
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

// ---- the body, declared once ---------------------------------------------------------------------
// Each field is reported under its name in Invite ('invite.federation', 'invite.coordinator.sign'),
// not its short key on the wire ('fed', 'sign'), and in the invite's own wording.

/** `schema`, reported as the invite's field `name` whatever its key in the body. */
const named = <T>(name: string, schema: Schema<T>) => rooted(`invite.${name}`, schema);

const VERSION_FIELD = 'invite.version';

/** Format version 1; another is an invite made by a newer fedit (INVITE_VERSION). */
const version: Schema<1> = {
  parse(value, path) {
    if (value !== 1) {
      fail(
        'FORMAT',
        path,
        `this invite has format version ${describe(value)}, but this fedit reads version 1; update fedit`,
      );
    }
    return value;
  },
};

/**
 * Where a coordinator listens: an http: or https: URL of 1 to MAX_URL_LENGTH characters (the length
 * checked before parsing). The rule of an invite's url, and of every copy of it a participant keeps
 * (its membership file).
 */
export const coordinatorUrl: Schema<string> = refine(
  predicate<string>(
    (v) => typeof v === 'string' && v.length > 0 && v.length <= MAX_URL_LENGTH,
    (v) => `must be a URL of 1 to ${MAX_URL_LENGTH} characters, got ${describe(v)}`,
    'RANGE',
  ),
  (value, path) => {
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      return fail('FORMAT', path, `${path} is not a valid URL: ${JSON.stringify(value)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      fail('FORMAT', path, `${path} must be an http: or https: URL, got ${JSON.stringify(parsed.protocol)}`);
    }
    // A password in an invite would be handed to every participant; a query or fragment is never
    // sent on (socket.io takes the path as the federation's namespace and nothing more).
    if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
      fail(
        'FORMAT',
        path,
        `${path} must have no user, password, query or fragment, got ${JSON.stringify(value)}`,
      );
    }
  },
);

/**
 * An invite's URL reaches its federation: the server's root (a coordinator serving one federation)
 * or /<federation id> (one process serving several, `fedit coordinator start DIR DIR ...`).
 */
function checkUrlPath(url: string, federation: string): void {
  const { pathname } = new URL(url);
  if (pathname !== '/' && pathname !== `/${federation}`) {
    throw new InviteError(
      'INVITE_FIELD',
      `invite.url must be the coordinator's address with no path, or with the path /${federation} when it serves several federations; got the path ${JSON.stringify(pathname)}`,
      { field: 'invite.url' },
    );
  }
}

const federationId = predicate<string>(
  (v) => typeof v === 'string' && FEDERATION_ID_PATTERN.test(v),
  (v) => `must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${describe(v)}`,
);

/** Exactly `length` bytes, as a plain Uint8Array view. */
const key = (length: number): Schema<Uint8Array> => {
  const exact = predicate<Uint8Array>(
    (v) => v instanceof Uint8Array && v.byteLength === length,
    (v) => `must be ${length} bytes, got ${describe(v)}`,
    'RANGE',
  );
  return { parse: (value, path) => plainBytes(exact.parse(value, path)) };
};

const expiry = predicate<number>(
  (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_TIMESTAMP_MS,
  (v) => `must be a time in ms since 1970, got ${describe(v)}`,
  'RANGE',
);

/** The MessagePack map of a version 1 invite, in the order formatInvite writes it. */
const inviteBodyV1 = object(
  {
    v: rooted(VERSION_FIELD, version),
    url: named('url', coordinatorUrl),
    fed: named('federation', federationId),
    sign: named('coordinator.sign', key(SIGN_PUBLIC_KEY_BYTES)),
    box: named('coordinator.box', key(BOX_PUBLIC_KEY_BYTES)),
    token: named('token', key(INVITE_TOKEN_BYTES)),
    exp: optional(named('expiresAt', expiry)),
  },
  {
    wording: { missing: 'must be a map, got undefined', notAField: 'is not a field of a version 1 invite' },
  },
);

type InviteBody = Infer<typeof inviteBodyV1>;

/** The body; its version is read first, so a newer invite is refused as newer, not for a field it adds. */
const inviteBody: Schema<InviteBody> = {
  parse(value, path) {
    if (isRecord(value)) inviteBodyV1.shape.v.parse(value.v, path);
    return inviteBodyV1.parse(value, path);
  },
};

/** `body` checked as an invite's; throws InviteError (INVITE_VERSION, or INVITE_FIELD naming the field). */
function checkBody(body: unknown): InviteBody {
  let parsed: InviteBody;
  try {
    parsed = inviteBody.parse(body, 'invite');
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    const code = error.field === VERSION_FIELD ? 'INVITE_VERSION' : 'INVITE_FIELD';
    throw new InviteError(code, error.message, { field: error.field });
  }
  checkUrlPath(parsed.url, parsed.fed);
  return parsed;
}
