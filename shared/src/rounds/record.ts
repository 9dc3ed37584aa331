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
//   kind       config | enrol | revoke | round-open | round-closed | round-aborted
//   prevHash   the previous record's hash; ZERO_HASH for the first record
//   time       when the coordinator wrote it: UTC, "YYYY-MM-DDTHH:MM:SS.sssZ", never decreasing
//   body       the kind's content (the *Body types below); bodies may carry further fields, which
//              are hashed and signed like the rest
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
import type { AggregationConfig } from '../aggregation/rule.ts';
import { canonicalBytes, canonicalJson, type CanonicalObject } from './canonical.ts';
import { DOMAINS, signDigest, verifyDigest } from '../crypto/sign.ts';
import type { RecordedEnvelope } from './envelope-record.ts';

export const ROUND_RECORD_KINDS = [
  'config',
  'enrol',
  'revoke',
  'round-open',
  'round-closed',
  'round-aborted',
] as const;
export type RoundRecordKind = (typeof ROUND_RECORD_KINDS)[number];

/** prevHash of the first record. */
export const ZERO_HASH = `sha256:${'0'.repeat(64)}`;

/** The federation's settings. The first record is a config record that names the initial adapter. */
export interface ConfigBody {
  /** The operator's federation settings, opaque to the log (base model, LoRA, training, privacy). */
  settings: CanonicalObject;
  /** When present, the global adapter from here on (hashTensors of its tensors). */
  globalAdapter?: string;
}

export interface EnrolBody {
  participant: string;
  /** The participant's Ed25519 public key as the protocol writes it. */
  publicKey: string;
  /**
   * The participant's X25519 public key (hex), which the coordinator records so that the
   * participant id can be checked as the fingerprint of both keys.
   */
  boxKey?: string;
  /** The name the participant chose to be shown under. */
  displayName?: string;
}

/** From this record on, the participant's updates no longer count. Revocation is final. */
export interface RevokeBody {
  participant: string;
  reason: string;
}

export interface RuleRef {
  /** An aggregation rule's registered name ("fedit"). */
  name: string;
  config: AggregationConfig;
}

/** How the round's participants were drawn (selection.ts), and whom it drew, sorted. */
export interface Selection {
  seed: string;
  /** Decimal string in (0, 1], e.g. "0.5". */
  fraction: string;
  minimum: number;
  selected: string[];
}

export interface RoundOpenBody {
  rule: RuleRef;
  /** Drawn from the participants enrolled and not revoked when the round opens. */
  selection: Selection;
  /** The global adapter the round trains from. */
  globalAdapter: string;
  /** Time after which uploads are late. */
  deadline: string;
}

export interface CountedUpdate {
  participant: string;
  /** The digest of the participant's signed envelope ("sha256:..."); never counted twice in a log. */
  envelopeDigest: string;
  /** n_k, the weight FedIT gives the update: a positive integer. */
  exampleCount: number;
  /** hashTensors of the update's tensors: their id in the blob store. */
  updateHash: string;
  /**
   * The participant's signed envelope (envelope-record.ts), so an auditor can check that the
   * participant, not the coordinator, committed to these tensors for this round.
   */
  envelope: RecordedEnvelope;
}

export interface DroppedParticipant {
  participant: string;
  /** Why the participant's update did not count ("late", "invalid: ...", "norm bound", ...). */
  reason: string;
}

export interface RoundClosedBody {
  /** Same as the round-open record's. */
  rule: RuleRef;
  /** Same as the round-open record's. */
  selection: Selection;
  /** The counted updates, sorted by participant id (UTF-8 byte order): the order they were added. */
  updates: CountedUpdate[];
  globalAdapterIn: string;
  /** The rule applied to the updates in the listed order; the next round's global adapter. */
  globalAdapterOut: string;
  dropped: DroppedParticipant[];
  /** Integers as numbers, anything else as strings (e.g. "train_loss": "1.8342"). */
  metrics: Record<string, string | number>;
}

/** The round ended without a new global adapter; the global adapter is unchanged. */
export interface RoundAbortedBody {
  reason: string;
  dropped: DroppedParticipant[];
}

export interface RoundRecordBodies {
  config: ConfigBody;
  enrol: EnrolBody;
  revoke: RevokeBody;
  'round-open': RoundOpenBody;
  'round-closed': RoundClosedBody;
  'round-aborted': RoundAbortedBody;
}

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
