// `fedit audit DIR`: verify a federation from its round log and blob store alone (a copy of both is
// enough: no secret keys, no database, no coordinator; nothing but @fedit/shared is loaded). Every
// blob the log names must be there; a damaged log line is a problem in the report, not an error
// that stops it.
//
// The coordinator's public key. With --key it is the one the auditor obtained out of band
// (coordinator-key.ts). Without --key it is read from
// keys/coordinator.pub.json in the audited folder itself, which only shows that the log is
// consistent with the key stored beside it; the report says which it was.
//
// The log's end (log-head.ts). The report gives the log's Merkle tree head (size and root) for
// auditors to pin, and whether the log ends in the federation's finished record. With --head, a
// signed tree head kept by a participant or another auditor, the log must extend it: a removed
// tail, a cut last line or a rewritten record fails the audit. Without one, a shortened log of an
// unfinished federation cannot be told from a log that is simply younger.

import { existsSync, readFileSync } from 'node:fs';
import { FeditError } from '../errors.ts';
import { parsePublicIdentity } from '../crypto/identity.ts';
import { federationPaths } from '../federation/paths.ts';
import { readNoiseSeed } from '../federation/noise-seeds.ts';
import { scanRoundLogFile, type LogLine, type TornTail } from '../rounds/log-file.ts';
import type { VerificationReport } from '../rounds/problems.ts';
import { verifyRoundLogLines } from '../rounds/verify.ts';
import { BlobStore } from '../store/blobs.ts';
import { parseCoordinatorKey, PUBLIC_KEY_FILE, type CoordinatorKey } from './coordinator-key.ts';
import {
  checkPinnedHead,
  readPinnedHead,
  treeOfLines,
  type LogTree,
  type PinnedHeadCheck,
} from './log-head.ts';

export type AuditReport = VerificationReport & {
  /** Where the coordinator key came from, e.g. "--key (invite)" or "keys/coordinator.pub.json in the audited folder". */
  keySource: string;
  /** False when the key was read from the audited folder rather than given with --key. */
  keyIndependent: boolean;
  tornTail?: TornTail;
  /** The log's Merkle tree head as read (rounds/merkle.ts): publish or pin it. */
  tree: LogTree;
  /** The finished record, when the log has one: the federation ran all its rounds. */
  finished?: { seq: number; rounds: number };
  /** The signed tree head given with --head, and whether the log extends it. */
  pinnedHead?: PinnedHeadCheck;
};

/** Audits the federation folder `dir` (or a copy of its log/, blobs/ and keys/). */
export async function auditFederation(
  dir: string,
  options: { coordinatorKey?: string; head?: string } = {},
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
    const pub = paths.publicKey;
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
  // Read before the log, so a --head that is not a head is refused before any work.
  const pinned = options.head === undefined ? undefined : readPinnedHead(options.head);
  const { lines, torn } = await scanRoundLogFile(paths.log);
  // Opened only when present: BlobStore creates its folder, and an audit writes nothing. Without
  // a blob store every blob the log names is missing, and the audit fails saying which.
  const store = existsSync(paths.blobs) ? new BlobStore(paths.blobs) : undefined;
  const report = verifyRoundLogLines(lines, {
    requireConfig: true,
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
    // The DP noise seeds are in the coordinator's folder only (noise/, owner-only): an auditor
    // given them regenerates every round's noise; one without them is told the noise is unchecked.
    noiseSeeds: (round) => {
      try {
        return readNoiseSeed(dir, round);
      } catch (err) {
        if (err instanceof FeditError) throw err;
        throw new FeditError('NOISE_SEED_UNREADABLE', (err as Error).message);
      }
    },
  });
  const { tree, head } = treeOfLines(lines);
  const finished = finishedRecord(lines);
  let pinnedHead: PinnedHeadCheck | undefined;
  if (pinned) {
    const federation = key.federation ?? (lines[0]?.value as { federation?: string } | undefined)?.federation;
    const problems = checkPinnedHead(pinned.head, { tree, federation }, key.sign);
    pinnedHead = { ...pinned, ok: problems.length === 0 };
    report.problems.push(...problems);
    report.firstFailure ??= problems[0];
    report.ok &&= problems.length === 0;
  }
  // A torn final line (a crash mid-append) is not a record: the records before it are what counts;
  // the coordinator truncates it at its next start. Say so rather than hide it.
  return {
    ...report,
    keySource: key.source,
    keyIndependent: keyGiven,
    ...(torn && { tornTail: torn }),
    tree: head,
    ...(finished && { finished }),
    ...(pinnedHead && { pinnedHead }),
  };
}

function finishedRecord(lines: readonly LogLine[]): { seq: number; rounds: number } | undefined {
  for (const line of lines) {
    const value = line.value as { kind?: unknown; seq?: unknown; body?: { rounds?: unknown } } | undefined;
    if (value?.kind === 'finished' && typeof value.seq === 'number' && typeof value.body?.rounds === 'number')
      return { seq: value.seq, rounds: value.body.rounds };
  }
  return undefined;
}

/** What the audit says about the DP noise of the rounds that carry it (none without DP). */
function noiseLines(r: AuditReport): string[] {
  const verified = r.rounds.filter((round) => round.noise === 'verified').map((round) => round.round);
  const unchecked = r.rounds.filter((round) => round.noise === 'unchecked').map((round) => round.round);
  const out: string[] = [];
  if (verified.length > 0)
    out.push(
      `differential privacy: the noise of round(s) ${verified.join(', ')} was regenerated from the coordinator's seed files, which match the commitments in the round-open records, and the adapters recomputed bit for bit`,
    );
  if (unchecked.length > 0)
    out.push(
      `note: the DP noise of round(s) ${unchecked.join(', ')} is UNCHECKED: this folder has no noise/round-<n>.seed for them, so neither the noise nor those rounds' adapters could be recomputed (the privacy accounts in the log were still checked)`,
    );
  return out;
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
  lines.push(
    `tree head: size ${r.tree.size}, root ${r.tree.root} (pin it: a later audit with --head catches a cut or rewritten log)`,
  );
  if (r.pinnedHead)
    lines.push(
      `pinned head (${r.pinnedHead.source}): size ${r.pinnedHead.head.size}, root ${r.pinnedHead.head.root}: ${r.pinnedHead.ok ? 'the log extends it' : 'the log does NOT extend it'}`,
    );
  lines.push(
    r.finished
      ? `the federation finished after ${r.finished.rounds} rounds (record ${r.finished.seq}): records cut from its end would show`
      : 'note: no finished record: the federation is still running, or records were cut from its end, which only a pinned head (--head) shows',
  );
  if (!r.keyIndependent)
    lines.push(
      'note: that key comes from the audited folder itself; pass --key with the key you got out of band (e.g. your invite) to know the log is the coordinator you joined',
    );
  lines.push(
    r.selectionSeeds === 'committed'
      ? 'selection seeds: each round revealed the next value of the seed chain committed to at init (checked)'
      : 'note: this log commits to no seed chain (a federation created before them): its selection seeds were unconstrained, drawn by the coordinator as it pleased',
  );
  lines.push(...noiseLines(r));
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
