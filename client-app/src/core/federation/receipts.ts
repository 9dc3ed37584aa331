// Receipts: the participant's own proof that its updates were counted, in the coordinator's signed
// log (shared/src/rounds/merkle.ts, tree-head.ts), and the signed tree heads it saw.
//
// After a round that counted this participant's update closes, it asks the coordinator for the
// round-closed record with its inclusion proof (log:inclusion), and keeps a receipt only when: the
// record is in canonical form, hashes to its hash and is signed with the coordinator key the invite
// pinned; it is this federation's round-closed record of that round and lists this participant's
// update, with an envelope its own key signed (the auditor checks that signature); the head is signed with that key, for this federation; and the proof puts the record at
// its seq under the head's root. Every head kept is checked for consistency (log:consistency)
// with the largest one kept before: two heads that are not consistent are signed proof that the
// coordinator showed two different logs (LOG_FORKED).
//
// Kept in <home>/receipts/<federation>.json, private like the rest of the home:
//   { "version": 1, "receipts": [{ round, seq, recordHash, head }], "heads": [head, ...] }

import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  AnnouncementError,
  canonicalJson,
  isRecordHash,
  parseTreeHead,
  recordLeafHash,
  rootBytes,
  verifyAnnouncedRecord,
  verifyConsistency,
  verifyInclusion,
  verifyTreeHeadSignature,
  type LogInclusionResult,
  type PublicIdentity,
  type RoundRecord,
  type RoundRecordOf,
  type SignedTreeHead,
} from '@fedit/shared';
import type { FederationConnection } from './connection.ts';
import { FederationError, corruptedHomeFile } from './errors.ts';
import { ensurePrivateDir, writePrivateFile } from './store.ts';

export interface Receipt {
  round: number;
  seq: number;
  recordHash: string;
  head: SignedTreeHead;
}

export interface ReceiptsFile {
  receipts: Receipt[];
  heads: SignedTreeHead[];
}

/** Whom a receipt is for: the federation, this participant, the coordinator key the invite pinned. */
export interface ReceiptContext {
  federation: string;
  participantId: string;
  /** This participant's signing key: the counted update's recorded envelope must be its own. */
  participantSignKey: Uint8Array;
  /** The coordinator's keys as the invite pinned them. */
  coordinator: PublicIdentity;
}

export function receiptsPath(home: string, federation: string): string {
  return join(home, 'receipts', `${federation}.json`);
}

export async function readReceipts(home: string, federation: string): Promise<ReceiptsFile> {
  const path = receiptsPath(home, federation);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { receipts: [], heads: [] };
    throw error;
  }
  return parseReceiptsText(text, path);
}

/** The receipts file's content, every head's shape checked; FEDERATION_HOME naming `path` if not. */
export function parseReceiptsText(text: string, path = 'receipts'): ReceiptsFile {
  try {
    const value = JSON.parse(text) as { receipts?: unknown; heads?: unknown };
    if (!Array.isArray(value.receipts) || !Array.isArray(value.heads)) throw new Error('not a receipts file');
    return {
      receipts: value.receipts.map((r: Receipt, i) => {
        if (!Number.isSafeInteger(r.round) || !Number.isSafeInteger(r.seq) || !isRecordHash(r.recordHash))
          throw new Error(`receipts[${i}] is not { round, seq, recordHash, head }`);
        return { ...r, head: parseTreeHead(r.head, `receipts[${i}].head`) };
      }),
      heads: value.heads.map((h, i) => parseTreeHead(h, `heads[${i}]`)),
    };
  } catch (error) {
    throw corruptedHomeFile(path, (error as Error).message, error);
  }
}

async function writeReceipts(home: string, federation: string, file: ReceiptsFile): Promise<void> {
  const path = receiptsPath(home, federation);
  await ensurePrivateDir(dirname(path));
  await writePrivateFile(path, JSON.stringify({ version: 1, ...file }, null, 2) + '\n');
}

const refused = (code: string, message: string) => new FederationError(code, message);

/** Checks a head: the pinned coordinator key's signature, this federation's. */
export function checkHead(head: SignedTreeHead, context: ReceiptContext, what = 'the tree head'): void {
  if (!verifyTreeHeadSignature(head, context.coordinator.sign))
    throw refused(
      'LOG_HEAD_SIGNATURE',
      `${what} (size ${head.size}) is not signed by the coordinator key your invite pinned`,
    );
  if (head.federation !== context.federation)
    throw refused(
      'LOG_HEAD_FEDERATION',
      `${what} (size ${head.size}) is federation ${head.federation}'s, not ${context.federation}'s`,
    );
}

/**
 * Checks a log:inclusion answer for round `round`'s round-closed record listing this participant's
 * update (and `envelopeDigest`, when known); returns the record. Throws naming what is wrong.
 */
export function checkInclusion(
  answer: LogInclusionResult,
  round: number,
  context: ReceiptContext,
): RoundRecord {
  // The record checks a signed announcement gets (shape, hash, signature, federation, kind), then
  // what a receipt adds: the text served is the record's canonical line, and it is this round's.
  let record: RoundRecordOf<'round-closed'>;
  try {
    record = verifyAnnouncedRecord(
      JSON.parse(answer.record),
      ['round-closed'],
      { federation: context.federation, coordinator: context.coordinator },
      `the record served for round ${round}`,
    );
  } catch (error) {
    if (error instanceof AnnouncementError) throw refused('LOG_RECORD', error.message);
    throw error;
  }
  if (canonicalJson(record) !== answer.record)
    throw refused('LOG_RECORD', `round ${round}'s record was served in another form than its canonical line`);
  if (record.round !== round)
    throw refused(
      'LOG_RECORD',
      `the record served (round ${record.round}) is not ${context.federation}'s round-closed record of round ${round}`,
    );
  const own = record.body.updates.find((u) => u.participant === context.participantId);
  if (!own)
    throw refused(
      'LOG_NOT_COUNTED',
      `round ${round}'s signed record does not list your update among the counted ones`,
    );
  if (own.envelope.participant !== Buffer.from(context.participantSignKey).toString('hex'))
    throw refused(
      'LOG_RECORD',
      `round ${round}'s signed record counts an update under your id whose envelope another key signed`,
    );
  checkHead(answer.head, context);
  if (
    !verifyInclusion(
      record.seq,
      answer.head.size,
      recordLeafHash(record),
      answer.proof,
      rootBytes(answer.head.root),
    )
  )
    throw refused(
      'LOG_INCLUSION',
      `the proof does not put round ${round}'s record (seq ${record.seq}) in the signed log of size ${answer.head.size}`,
    );
  return record;
}

/**
 * Checks that `older` and `newer` (sizes in that order, both already checked) show one log,
 * asking the coordinator for the consistency proof. Throws LOG_FORKED when they do not.
 */
export async function checkConsistent(
  connection: FederationConnection,
  older: SignedTreeHead,
  newer: SignedTreeHead,
): Promise<void> {
  const forked = () =>
    refused(
      'LOG_FORKED',
      `the coordinator showed two different logs: heads of size ${older.size} and ${newer.size} are not consistent (roots ${older.root} and ${newer.root})`,
    );
  if (older.size === newer.size) {
    if (older.root !== newer.root) throw forked();
    return;
  }
  const { proof } = await connection.request('log:consistency', { from: older.size, to: newer.size });
  if (!verifyConsistency(older.size, newer.size, rootBytes(older.root), rootBytes(newer.root), proof))
    throw forked();
}

/** The coordinator now shows a log shorter than a head it signed for this participant. */
function rolledBack(current: SignedTreeHead, kept: SignedTreeHead): FederationError {
  return refused(
    'LOG_FORKED',
    `the coordinator showed two different logs: its log now has ${current.size} records, but it signed a head of size ${kept.size} before (root ${kept.root}); records were removed`,
  );
}

/** Checks `head` against every head kept (each pair in size order) and keeps it. */
async function keepHead(
  connection: FederationConnection,
  file: ReceiptsFile,
  head: SignedTreeHead,
): Promise<void> {
  for (const seen of file.heads) {
    if (seen.size > head.size) throw rolledBack(head, seen);
    await checkConsistent(connection, seen, head);
  }
  if (!file.heads.some((h) => h.size === head.size && h.root === head.root)) file.heads.push(head);
  file.heads.sort((a, b) => a.size - b.size);
}

/**
 * Fetches, checks and keeps the receipt of this participant's update in round `round`; returns
 * undefined when the round's record does not list it (it was not counted).
 */
export async function keepRoundReceipt(
  connection: FederationConnection,
  home: string,
  round: number,
  context: ReceiptContext,
): Promise<Receipt | undefined> {
  const answer = await connection.request('log:inclusion', { round });
  let record: RoundRecord;
  try {
    record = checkInclusion(answer, round, context);
  } catch (error) {
    if ((error as FederationError).code === 'LOG_NOT_COUNTED') return undefined;
    throw error;
  }
  const file = await readReceipts(home, context.federation);
  await keepHead(connection, file, answer.head);
  const receipt: Receipt = { round, seq: record.seq, recordHash: record.hash, head: answer.head };
  file.receipts = [...file.receipts.filter((r) => r.round !== round), receipt].sort(
    (a, b) => a.round - b.round,
  );
  await writeReceipts(home, context.federation, file);
  return receipt;
}

export interface VerifyReport {
  federation: string;
  /** Receipts whose record the coordinator's current head still includes. */
  verified: number;
  receipts: number;
  head: SignedTreeHead;
  /** Heads kept (and the one given) found consistent with the current head. */
  headsChecked: number;
  /** The head given with --head, when one was. */
  otherHead?: { size: number; root: string; consistent: true };
}

/**
 * Re-checks every receipt against the coordinator's current head, every kept head (and `other`,
 * one another participant or auditor holds) for consistency with it. Throws on the first failure.
 */
export async function verifyReceipts(
  connection: FederationConnection,
  home: string,
  context: ReceiptContext,
  other?: SignedTreeHead,
): Promise<VerifyReport> {
  const file = await readReceipts(home, context.federation);
  const { head } = await connection.request('log:head', {});
  checkHead(head, context, "the coordinator's current head");
  if (other) checkHead(other, context, 'the head given with --head');
  // Every head kept, and every receipt's, is re-checked as if new: the file is only as good as
  // the signatures in it.
  const heads = [...file.heads, ...file.receipts.map((r) => r.head), ...(other ? [other] : [])];
  for (const seen of heads) {
    checkHead(seen, context, seen === other ? 'the head given with --head' : 'a head you kept');
    if (seen.size > head.size) {
      if (seen === other) await checkConsistent(connection, head, seen);
      else throw rolledBack(head, seen);
    } else await checkConsistent(connection, seen, head);
  }
  let verified = 0;
  for (const receipt of file.receipts) {
    const answer = await connection.request('log:inclusion', { seq: receipt.seq, size: head.size });
    const record = checkInclusion(answer, receipt.round, context);
    if (record.hash !== receipt.recordHash || answer.head.root !== head.root)
      throw refused(
        'LOG_RECEIPT',
        `round ${receipt.round}'s receipt names record ${receipt.recordHash}, but the log holds ${record.hash} at seq ${receipt.seq}`,
      );
    verified++;
  }
  await keepHead(connection, file, head);
  await writeReceipts(home, context.federation, file);
  return {
    federation: context.federation,
    verified,
    receipts: file.receipts.length,
    head,
    headsChecked: heads.length,
    ...(other && { otherHead: { size: other.size, root: other.root, consistent: true as const } }),
  };
}

/** "your 3 of 3 updates are in the signed log (head of size N, root ...)". */
export function receiptsLine(report: VerifyReport): string {
  return `your ${report.verified} of ${report.receipts} updates are in the signed log (head of size ${report.head.size}, root ${report.head.root})`;
}

/** The receipt context of a membership: its federation, this participant, the pinned key. */
export function receiptContext(
  membership: { federation: string; coordinator: PublicIdentity },
  participant: { id: string; signKey: Uint8Array },
): ReceiptContext {
  return {
    federation: membership.federation,
    participantId: participant.id,
    participantSignKey: participant.signKey,
    coordinator: membership.coordinator,
  };
}

/**
 * The line the app shows from what is on disk (each receipt was checked when it was kept; `fedit
 * client verify` checks them again with the coordinator): receipts held of the updates this
 * computer sent to rounds that aggregated. Undefined before the first such update.
 */
export function keptReceiptsLine(file: ReceiptsFile, sentToAggregatedRounds: number): string | undefined {
  const latest = file.heads.at(-1);
  if (sentToAggregatedRounds === 0 || !latest) return undefined;
  return `your ${file.receipts.length} of ${Math.max(sentToAggregatedRounds, file.receipts.length)} updates are in the signed log (head of size ${latest.size}, root ${latest.root.slice(0, 19)}…)`;
}
