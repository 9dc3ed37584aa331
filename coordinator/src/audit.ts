// `fedit audit DIR`: verify a federation from its round log and blob store alone (a copy of both is
// enough: no keys, no database, no coordinator). The coordinator's public key comes from --key, or
// from keys/coordinator.pub.json when the folder has it.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FeditError,
  fromHex,
  parsePublicIdentity,
  readRoundLog,
  verifyRoundLog,
  type TornTail,
  type VerificationReport,
} from '@fedit/shared';
import { BlobStore } from './store/blobs.ts';
import { federationPaths } from './federation/dir.ts';

export const PUBLIC_KEY_FILE = 'coordinator.pub.json';

export type AuditReport = VerificationReport & { keySource: string; tornTail?: TornTail };

export async function auditFederation(
  dir: string,
  options: { coordinatorKey?: string } = {},
): Promise<AuditReport> {
  const paths = federationPaths(dir);
  if (!existsSync(paths.log))
    throw new FeditError('AUDIT_NO_LOG', `${dir}: no round log at log/rounds.jsonl`);
  let key: Uint8Array;
  let keySource: string;
  if (options.coordinatorKey) {
    key = fromHex(options.coordinatorKey, '--key', 32);
    keySource = '--key';
  } else {
    const pub = join(dir, 'keys', PUBLIC_KEY_FILE);
    if (!existsSync(pub))
      throw new FeditError(
        'AUDIT_NO_KEY',
        `${dir}: give the coordinator's public signing key with --key (hex), or keep keys/${PUBLIC_KEY_FILE} beside the log`,
      );
    key = parsePublicIdentity(JSON.parse(readFileSync(pub, 'utf8')), PUBLIC_KEY_FILE).sign;
    keySource = `keys/${PUBLIC_KEY_FILE}`;
  }
  const parsed = await readRoundLog(paths.log);
  const blobs = existsSync(paths.blobs) ? new BlobStore(paths.blobs) : undefined;
  const report = verifyRoundLog(parsed.records, {
    coordinatorPublicKey: key,
    blobs: blobs && ((hash) => (blobs.has(hash) ? blobs.get(hash) : undefined)),
  });
  // A torn final line (a crash mid-append) is not a record: the records before it are what counts;
  // the coordinator truncates it at its next start. Say so rather than hide it.
  return { ...report, keySource, tornTail: parsed.torn };
}

/** The report as a table a person reads. */
export function formatAudit(r: AuditReport): string {
  const lines = [`round  status    rule    selected  counted  aggregation  verdict`];
  for (const round of r.rounds) {
    lines.push(
      `${String(round.round).padStart(5)}  ${round.status.padEnd(8)}  ${round.rule.padEnd(6)}  ${String(round.selected.length).padStart(8)}  ${String(round.participants.length).padStart(7)}  ${round.aggregation.padEnd(11)}  ${round.ok ? 'ok' : 'FAILED'}`,
    );
  }
  lines.push('');
  lines.push(`${r.records} records, head ${r.head}, signatures checked against ${r.keySource}`);
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
  }
  return lines.join('\n');
}
