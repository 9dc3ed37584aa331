// `fedit audit DIR`: verify a federation from its round log and blob store alone (a copy of both is
// enough: no secret keys, no database, no coordinator). Every blob the log names must be there;
// a damaged log line is a problem in the report, not an error that stops it.
//
// The coordinator's public key. With --key it is the one the auditor obtained out of band (an
// invite, the operator's published key): the only way to tell the coordinator's log from a log
// someone else wrote and signed with their own key. Without --key it is read from
// keys/coordinator.pub.json in the audited folder itself, which only shows that the log is
// consistent with the key stored beside it; the report says which it was.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  FeditError,
  INVITE_PREFIX,
  parseInvite,
  parsePublicIdentity,
  scanRoundLogFile,
  verifyRoundLogLines,
  type TornTail,
  type VerificationReport,
} from '@fedit/shared';
import { BlobStore } from './store/blobs.ts';
import { federationPaths } from './federation/dir.ts';

export const PUBLIC_KEY_FILE = 'coordinator.pub.json';

export type AuditReport = VerificationReport & {
  /** Where the coordinator key came from, e.g. "--key (invite)" or "keys/coordinator.pub.json in the audited folder". */
  keySource: string;
  /** False when the key was read from the audited folder rather than given with --key. */
  keyIndependent: boolean;
  tornTail?: TornTail;
};

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

export async function auditFederation(
  dir: string,
  options: { coordinatorKey?: string } = {},
): Promise<AuditReport> {
  const paths = federationPaths(dir);
  if (!existsSync(paths.log))
    throw new FeditError('AUDIT_NO_LOG', `${dir}: no round log at log/rounds.jsonl`);
  let key: CoordinatorKey;
  // The same test as keyIndependent below: a --key given (even empty, which parseCoordinatorKey
  // refuses) is never silently replaced by the folder's own key.
  const keyGiven = options.coordinatorKey !== undefined;
  if (keyGiven) {
    key = parseCoordinatorKey(options.coordinatorKey!);
  } else {
    const pub = join(dir, 'keys', PUBLIC_KEY_FILE);
    if (!existsSync(pub))
      throw new FeditError(
        'AUDIT_NO_KEY',
        `${dir}: give the coordinator's public signing key with --key (from your invite, or as hex or base64url), or keep keys/${PUBLIC_KEY_FILE} beside the log`,
      );
    key = {
      sign: parsePublicIdentity(JSON.parse(readFileSync(pub, 'utf8')), PUBLIC_KEY_FILE).sign,
      source: `keys/${PUBLIC_KEY_FILE} in the audited folder`,
    };
  }
  const { lines, torn } = await scanRoundLogFile(paths.log);
  // Opened only when present: BlobStore creates its folder, and an audit writes nothing. Without
  // a blob store every blob the log names is missing, and the audit fails saying which.
  const store = existsSync(paths.blobs) ? new BlobStore(paths.blobs) : undefined;
  const report = verifyRoundLogLines(lines, {
    coordinatorPublicKey: key.sign,
    ...(key.federation !== undefined && { federation: key.federation }),
    blobs: (hash) => {
      if (!store?.has(hash)) return undefined;
      try {
        return store.get(hash);
      } catch (err) {
        if (err instanceof FeditError) throw err;
        // An unreadable file (permissions, I/O error) is a problem of the round, not a crash.
        throw new FeditError('BLOB_UNREADABLE', (err as Error).message);
      }
    },
  });
  // A torn final line (a crash mid-append) is not a record: the records before it are what counts;
  // the coordinator truncates it at its next start. Say so rather than hide it.
  return {
    ...report,
    keySource: key.source,
    keyIndependent: keyGiven,
    ...(torn && { tornTail: torn }),
  };
}

/** The report as a table a person reads. */
export function formatAudit(r: AuditReport): string {
  const lines = [`round  status    rule    selected  counted  aggregation  verdict`];
  for (const round of r.rounds) {
    const verdict = round.ok ? 'ok' : `FAILED: ${[...new Set(round.problems.map((p) => p.code))].join(', ')}`;
    lines.push(
      `${String(round.round).padStart(5)}  ${round.status.padEnd(8)}  ${round.rule.padEnd(6)}  ${String(round.selected.length).padStart(8)}  ${String(round.participants.length).padStart(7)}  ${round.aggregation.padEnd(11)}  ${verdict}`,
    );
  }
  lines.push('');
  lines.push(`${r.records} records, head ${r.head}, signatures checked against ${r.keySource}`);
  if (!r.keyIndependent)
    lines.push(
      'note: that key comes from the audited folder itself; pass --key with the key you got out of band (e.g. your invite) to know the log is the coordinator you joined',
    );
  if (r.tornTail)
    lines.push(
      `note: the log ends in a torn line ${r.tornTail.line} (${r.tornTail.bytes} bytes, a crash during a write), not counted`,
    );
  if (r.ok)
    lines.push(
      'verdict: the log verifies: every round was aggregated from signed contributions of enrolled, selected participants with the announced rule',
    );
  else {
    lines.push(`verdict: FAILED — ${r.firstFailure?.message ?? r.problems[0]?.message ?? 'see problems'}`);
    for (const p of r.problems.slice(0, 20)) lines.push(`  - [${p.code}] ${p.message}`);
    if (r.problems.length > 20) lines.push(`  ... and ${r.problems.length - 20} more (--json lists all)`);
  }
  return lines.join('\n');
}
