// The coordinator's public signing key as an auditor holds it: the one thing an audit needs besides
// the log and the blobs, and the only way to tell the coordinator's log from a log someone else
// wrote and signed with their own key (when it was obtained out of band: an invite, the operator's
// published key).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { FeditError } from '../errors.ts';
import { INVITE_PREFIX, parseInvite } from '../crypto/invite.ts';
import { parsePublicIdentity } from '../crypto/identity.ts';

export const PUBLIC_KEY_FILE = 'coordinator.pub.json';

/** The coordinator key an auditor gives, and the federation when the key came with one (an invite). */
export interface CoordinatorKey {
  sign: Uint8Array;
  federation?: string;
  source: string;
}

/**
 * Reads the coordinator's public signing key from what an auditor may hold: 64 hex digits, 43
 * base64url characters (as coordinator.pub.json and invites write keys), an invite string, or the
 * path of a coordinator.pub.json or of a file holding an invite.
 */
export function parseCoordinatorKey(text: string): CoordinatorKey {
  const value = text.trim();
  if (value === '')
    throw new FeditError(
      'AUDIT_KEY',
      `--key is empty: give the coordinator's public signing key (your invite string, a ${PUBLIC_KEY_FILE} path, or the key in hex or base64url), or leave --key out to check against the key stored in the audited folder`,
    );
  if (/^[0-9a-fA-F]{64}$/.test(value)) {
    return { sign: new Uint8Array(Buffer.from(value, 'hex')), source: '--key (hex)' };
  }
  if (/^[A-Za-z0-9_-]{43}$/.test(value)) {
    const bytes = Buffer.from(value, 'base64url');
    if (bytes.length === 32 && bytes.toString('base64url') === value) {
      return { sign: new Uint8Array(bytes), source: '--key (base64url)' };
    }
  }
  if (value.replace(/\s+/g, '').startsWith(INVITE_PREFIX)) {
    // Only the keys matter here: an invite that expired (or was used) still names them.
    const invite = parseInvite(value, { now: 0 });
    return { sign: invite.coordinator.sign, federation: invite.federation, source: '--key (invite)' };
  }
  if (existsSync(value) && statSync(value).isFile()) {
    const content = readFileSync(value, 'utf8').trim();
    if (content.replace(/\s+/g, '').startsWith(INVITE_PREFIX)) {
      const invite = parseInvite(content, { now: 0 });
      return {
        sign: invite.coordinator.sign,
        federation: invite.federation,
        source: `--key ${value} (invite)`,
      };
    }
    let json: unknown;
    try {
      json = JSON.parse(content);
    } catch {
      throw new FeditError(
        'AUDIT_KEY',
        `--key ${value}: the file is neither JSON (a coordinator.pub.json) nor an invite`,
      );
    }
    return { sign: parsePublicIdentity(json, value).sign, source: `--key ${value}` };
  }
  throw new FeditError(
    'AUDIT_KEY',
    `--key ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)} is not a key: give the coordinator's public signing key as 64 hex digits or 43 base64url characters, an invite string ("${INVITE_PREFIX}..."), or the path of a ${PUBLIC_KEY_FILE}`,
  );
}
