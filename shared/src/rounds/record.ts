// Round records: the entries of a federation's append-only round log, the source of truth from
// which an auditor checks every round (verify.ts) and the coordinator rebuilds its state and index
// (the fold, state.ts).
//
// A record is a JSON object with exactly these fields:
//
//   seq        0, 1, 2, ... its position in the log
//   federation the federation's id, the same in every record
//   round      for round-open/-closed/-aborted the round's number (1, 2, ...); for the other kinds
//              the number of the last round opened before it (0 before the first)
//   kind       config | enrol | rename | revoke | round-open | round-closed | round-aborted |
//              finished (the federation ran all its rounds; written once, after the last round) |
//              secagg-keys | secagg-shares | secagg-unmask | secagg-consistency (a secure round's
//              phases, in that order between its round-open and its round-closed or round-aborted)
//   prevHash   the previous record's hash; ZERO_HASH for the first record
//   time       when the coordinator wrote it: UTC, "YYYY-MM-DDTHH:MM:SS.sssZ", never decreasing
//   body       the kind's content (RECORD_BODIES in record-shape.ts declares each, the *Body types
//              below are derived from it); bodies may carry further fields, which are hashed and
//              signed like the rest
//   hash       "sha256:" + hex(D), D = SHA-256("fedit/record/v1" || C), where C is the canonical
//              encoding (canonical.ts) of the record without its hash and signature fields; the
//              prefix keeps record hashes apart from every other SHA-256 fedit names things by
//   signature  hex of the coordinator's Ed25519 signature of D under the domain 'fedit/record/v1',
//              as crypto/sign.ts signs every digest: Ed25519 over
//              SHA-256(u8 len(domain) || domain || D); S must be below the group order
//
// Every float a record needs is a decimal string (the selection fraction, metrics), so the
// canonical encoding holds integers only. Tensors are named by their content hash (hashTensors:
// "sha256:" + 64 hex digits), their bytes live in the coordinator's blob store.

import { createHash } from 'node:crypto';
import { DOMAINS, signDigest, verifyDigest } from '../crypto/sign.ts';
import type { Infer } from '../schema/schema.ts';
import { canonicalBytes, canonicalJson } from './canonical.ts';
import type { RECORD_BODIES, countedUpdate, droppedParticipant, ruleRef, selection } from './record-shape.ts';

export const ROUND_RECORD_KINDS = [
  'config',
  'enrol',
  'rename',
  'revoke',
  'round-open',
  'round-closed',
  'round-aborted',
  'finished',
  'secagg-keys',
  'secagg-shares',
  'secagg-unmask',
  'secagg-consistency',
] as const;
export type RoundRecordKind = (typeof ROUND_RECORD_KINDS)[number];

/** prevHash of the first record. */
export const ZERO_HASH = `sha256:${'0'.repeat(64)}`;

// The bodies' types, derived from their declarations in record-shape.ts (which say what each
// field means), so the parser and the types cannot drift apart.
type Body<K extends RoundRecordKind> = Infer<(typeof RECORD_BODIES)[K]>;

export type RoundRecordBodies = { [K in RoundRecordKind]: Body<K> };
export type ConfigBody = Body<'config'>;
export type EnrolBody = Body<'enrol'>;
export type RenameBody = Body<'rename'>;
export type RevokeBody = Body<'revoke'>;
export type RoundOpenBody = Body<'round-open'>;
export type RoundClosedBody = Body<'round-closed'>;
export type RoundAbortedBody = Body<'round-aborted'>;
export type FinishedBody = Body<'finished'>;
export type SecaggKeysBody = Body<'secagg-keys'>;
export type SecaggSharesBody = Body<'secagg-shares'>;
export type SecaggUnmaskBody = Body<'secagg-unmask'>;
export type SecaggConsistencyBody = Body<'secagg-consistency'>;
export type SecureSection = NonNullable<RoundClosedBody['secure']>;
export type RuleRef = Infer<typeof ruleRef>;
export type Selection = Infer<typeof selection>;
export type CountedUpdate = Infer<typeof countedUpdate>;
export type DroppedParticipant = Infer<typeof droppedParticipant>;

interface RecordFields<K extends RoundRecordKind> {
  seq: number;
  federation: string;
  round: number;
  kind: K;
  prevHash: string;
  time: string;
  body: RoundRecordBodies[K];
}

/** A record as stored: its fields, its hash and the coordinator's signature. */
export type RoundRecordOf<K extends RoundRecordKind> = RecordFields<K> & { hash: string; signature: string };
export type RoundRecord = { [K in RoundRecordKind]: RoundRecordOf<K> }[RoundRecordKind];
/** A record before hashing and signing. */
export type UnsignedRoundRecord = { [K in RoundRecordKind]: RecordFields<K> }[RoundRecordKind];

const RECORD_DOMAIN = new TextEncoder().encode('fedit/record/v1');

/** SHA-256("fedit/record/v1" || canonical bytes of the record without hash and signature). */
export function roundRecordDigest(record: UnsignedRoundRecord | RoundRecord): Uint8Array {
  const { seq, federation, round, kind, prevHash, time, body } = record;
  const bytes = canonicalBytes({ seq, federation, round, kind, prevHash, time, body });
  return new Uint8Array(createHash('sha256').update(RECORD_DOMAIN).update(bytes).digest());
}

/** The record's hash as it is written in `hash` and the next record's `prevHash`. */
export function roundRecordHash(record: UnsignedRoundRecord | RoundRecord): string {
  return `sha256:${Buffer.from(roundRecordDigest(record)).toString('hex')}`;
}

/** Hashes and signs a record with the coordinator's tweetnacl secret key (64 bytes). */
export function signRoundRecord(record: UnsignedRoundRecord, coordinatorSecretKey: Uint8Array): RoundRecord {
  const digest = roundRecordDigest(record);
  const signature = signDigest(coordinatorSecretKey, DOMAINS.record, digest);
  return {
    ...record,
    hash: `sha256:${Buffer.from(digest).toString('hex')}`,
    signature: Buffer.from(signature).toString('hex'),
  } as RoundRecord;
}

/** Whether the record's signature is the coordinator's (Ed25519 public key, 32 bytes) over its content. */
export function verifyRoundRecordSignature(record: RoundRecord, coordinatorPublicKey: Uint8Array): boolean {
  if (!/^[0-9a-f]{128}$/.test(record.signature)) return false;
  const signature = new Uint8Array(Buffer.from(record.signature, 'hex'));
  return verifyDigest(coordinatorPublicKey, DOMAINS.record, roundRecordDigest(record), signature);
}

/** The record's line in a round log file: its canonical JSON and a newline. */
export function roundRecordLine(record: RoundRecord): string {
  return canonicalJson(record) + '\n';
}

/** Time as records write it. */
export function recordTime(date: Date): string {
  return date.toISOString();
}

/**
 * The participants a closed round counted: its updates' participants, or in a secure round the
 * survivors whose masked inputs were summed.
 */
export function countedParticipants(body: RoundClosedBody): string[] {
  return body.secure
    ? body.secure.maskedInputs.map((m) => m.participant)
    : body.updates.map((u) => u.participant);
}
