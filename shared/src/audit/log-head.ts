// The audit's view of the log as a Merkle tree (rounds/merkle.ts): the tree head of the log as it
// is on disk (size and root, which an auditor publishes or pins), and the check of a signed tree
// head someone kept (a participant's, another auditor's) against it: `fedit audit --head`.
//
// Without a pinned head an audit sees only what the log holds: records removed from its end, a
// last line cut at any byte (it reads as a torn line, left out), or its final newline deleted look
// like a log that is simply shorter. Only a finished federation whose finished record is missing
// shows it (the report's `finished`). With a head of size n signed by the coordinator, the log must
// hold at least n records and its first n must have the head's root: a cut tail (HEAD_BEYOND_LOG)
// or any rewrite of those records (HEAD_ROOT_MISMATCH) fails the audit.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { FeditError } from '../errors.ts';
import type { LogLine } from '../rounds/log-file.ts';
import type { VerificationProblem } from '../rounds/problems.ts';
import { isRecordHash } from '../rounds/record-shape.ts';
import {
  parseTreeHead,
  recordTree,
  rootString,
  verifyTreeHeadSignature,
  type SignedTreeHead,
} from '../rounds/tree-head.ts';

/** The log's tree as the audit read it: the records up to the first line without a readable hash. */
export interface LogTree {
  size: number;
  root: string;
}

/**
 * A head to check the log against: a signed tree head (a participant's), or the `tree` an earlier
 * audit printed, `{ size, root }`, which the auditor vouches for himself.
 */
export type PinnedHead = SignedTreeHead | LogTree;

const isSigned = (head: PinnedHead): head is SignedTreeHead => 'signature' in head;

/** What checking a pinned head showed. */
export interface PinnedHeadCheck {
  head: PinnedHead;
  source: string;
  ok: boolean;
}

/**
 * The tree over the log's lines, in order, up to the first line that carries no record hash (a
 * damaged line: the audit reports it; the tree cannot be known past it).
 */
export function treeOfLines(lines: readonly LogLine[]): {
  tree: ReturnType<typeof recordTree>;
  head: LogTree;
} {
  const hashes: { hash: string }[] = [];
  for (const line of lines) {
    const hash = (line.value as { hash?: unknown } | undefined)?.hash;
    if (!isRecordHash(hash)) break;
    hashes.push({ hash });
  }
  const tree = recordTree(hashes);
  return { tree, head: { size: tree.size, root: rootString(tree.root()) } };
}

/** Reads a signed tree head given as JSON text or as the path of a file holding it. */
export function readPinnedHead(text: string): { head: PinnedHead; source: string } {
  const value = text.trim();
  let json: string;
  let source: string;
  if (value.startsWith('{')) {
    json = value;
    source = '--head (JSON)';
  } else if (value !== '' && existsSync(value) && statSync(value).isFile()) {
    json = readFileSync(value, 'utf8');
    source = `--head ${value}`;
  } else {
    throw new FeditError(
      'AUDIT_HEAD',
      `--head ${JSON.stringify(value.slice(0, 40))} is neither a signed tree head as JSON nor a file holding one`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new FeditError(
      'AUDIT_HEAD',
      `${source}: not JSON; give a signed tree head {federation, size, root, time, signature}, or the {size, root} an earlier audit printed`,
    );
  }
  try {
    const fields = typeof parsed === 'object' && parsed !== null ? Object.keys(parsed).sort().join(',') : '';
    if (fields === 'root,size') return { head: parseLogTree(parsed as LogTree), source };
    return { head: parseTreeHead(parsed, 'head'), source };
  } catch (err) {
    throw new FeditError('AUDIT_HEAD', `${source}: ${(err as Error).message}`, { cause: err });
  }
}

/** An audit's own `tree` ({ size, root }), checked like a signed head's fields. */
function parseLogTree(value: LogTree): LogTree {
  const { size, root } = parseTreeHead(
    { ...value, federation: 'unsigned', time: '1970-01-01T00:00:00.000Z', signature: '0'.repeat(128) },
    'head',
  );
  return { size, root };
}

/**
 * The problems of `pinned` against the log: not the coordinator's signature or another
 * federation's head, a log shorter than the head, or first records that are not the head's tree.
 */
export function checkPinnedHead(
  pinned: PinnedHead,
  log: { tree: ReturnType<typeof recordTree>; federation: string | undefined },
  coordinatorPublicKey: Uint8Array,
): VerificationProblem[] {
  const about = `the pinned tree head (size ${pinned.size}, root ${pinned.root})`;
  const at = Math.max(0, pinned.size - 1);
  if (isSigned(pinned) && !verifyTreeHeadSignature(pinned, coordinatorPublicKey))
    return [
      {
        seq: at,
        code: 'HEAD_SIGNATURE',
        message: `${about} is not signed by the coordinator key the audit uses`,
      },
    ];
  if (isSigned(pinned) && log.federation !== undefined && pinned.federation !== log.federation)
    return [
      {
        seq: at,
        code: 'HEAD_SIGNATURE',
        message: `${about} is federation ${pinned.federation}'s, not this log's (${log.federation})`,
      },
    ];
  if (pinned.size > log.tree.size)
    return [
      {
        seq: log.tree.size,
        code: 'HEAD_BEYOND_LOG',
        message: `the log holds ${log.tree.size} records, but ${about} covers ${pinned.size}: records ${log.tree.size} to ${pinned.size - 1} were removed from its end (or cut or damaged)`,
      },
    ];
  const root = rootString(log.tree.root(pinned.size));
  if (root !== pinned.root)
    return [
      {
        seq: at,
        code: 'HEAD_ROOT_MISMATCH',
        message: `the log's first ${pinned.size} records have root ${root}, not that of ${about}: records the coordinator signed into that head were rewritten, removed or reordered`,
      },
    ];
  return [];
}
