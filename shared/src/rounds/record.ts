// Round records: the entries of a federation's append-only round log, the source of truth from
// which an auditor checks every round (verify.ts) and the coordinator rebuilds its index.
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
import { RoundLogError } from './round-error.ts';
import { DOMAINS, signDigest, verifyDigest } from '../crypto/sign.ts';
import type { RecordedEnvelope } from './envelope-record.ts';
import { ENVELOPE_FIELDS } from '../protocol/validate.ts';

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

// ---- shape validation ---------------------------------------------------------------------------

const HASH = /^sha256:[0-9a-f]{64}$/;
const SIGNATURE = /^[0-9a-f]{128}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FRACTION = /^(?:0\.\d*[1-9]\d*|1(?:\.0+)?)$/;

/** Whether `value` is a content hash as records write them ("sha256:" + 64 lowercase hex). */
export function isRecordHash(value: unknown): value is string {
  return typeof value === 'string' && HASH.test(value);
}

/** Whether `value` is a record time ("YYYY-MM-DDTHH:MM:SS.sssZ", a real instant). */
export function isRecordTime(value: unknown): value is string {
  if (typeof value !== 'string' || !TIME.test(value)) return false;
  const date = new Date(value);
  return !Number.isNaN(date.getTime()) && date.toISOString() === value;
}

/**
 * Checks that `value` has the shape of a round record (every field, its type and form, the body
 * of its kind) and returns it typed. Throws RoundLogError('ROUND_RECORD_SHAPE') naming the field.
 * Unknown fields in a body are kept (they are part of the hash); unknown top-level fields are not.
 */
export function parseRoundRecord(value: unknown, label = 'record'): RoundRecord {
  const r = object(value, label);
  const allowed = new Set([
    'seq',
    'federation',
    'round',
    'kind',
    'prevHash',
    'time',
    'body',
    'hash',
    'signature',
  ]);
  for (const key of Object.keys(r)) {
    if (!allowed.has(key)) throw shape(`${label}.${key}`, 'is not a field of round records');
  }
  count(r.seq, `${label}.seq`);
  text(r.federation, `${label}.federation`);
  count(r.round, `${label}.round`);
  if (!(ROUND_RECORD_KINDS as readonly unknown[]).includes(r.kind)) {
    throw shape(`${label}.kind`, `is ${JSON.stringify(r.kind)}; kinds are ${ROUND_RECORD_KINDS.join(', ')}`);
  }
  hash(r.prevHash, `${label}.prevHash`);
  if (!isRecordTime(r.time)) throw shape(`${label}.time`, 'is not a UTC time "YYYY-MM-DDTHH:MM:SS.sssZ"');
  hash(r.hash, `${label}.hash`);
  if (typeof r.signature !== 'string' || !SIGNATURE.test(r.signature)) {
    throw shape(`${label}.signature`, 'is not 128 lowercase hex digits (an Ed25519 signature)');
  }
  BODY_CHECKS[r.kind as RoundRecordKind](object(r.body, `${label}.body`), `${label}.body`);
  return value as RoundRecord;
}

const BODY_CHECKS: { [K in RoundRecordKind]: (body: Record<string, unknown>, path: string) => void } = {
  config(b, path) {
    object(b.settings, `${path}.settings`);
    if (b.globalAdapter !== undefined) hash(b.globalAdapter, `${path}.globalAdapter`);
  },
  enrol(b, path) {
    text(b.participant, `${path}.participant`);
    text(b.publicKey, `${path}.publicKey`);
  },
  revoke(b, path) {
    text(b.participant, `${path}.participant`);
    string(b.reason, `${path}.reason`);
  },
  'round-open'(b, path) {
    ruleRef(b.rule, `${path}.rule`);
    selection(b.selection, `${path}.selection`);
    hash(b.globalAdapter, `${path}.globalAdapter`);
    if (!isRecordTime(b.deadline))
      throw shape(`${path}.deadline`, 'is not a UTC time "YYYY-MM-DDTHH:MM:SS.sssZ"');
  },
  'round-closed'(b, path) {
    ruleRef(b.rule, `${path}.rule`);
    selection(b.selection, `${path}.selection`);
    array(b.updates, `${path}.updates`).forEach((u, i) => {
      const p = `${path}.updates[${i}]`;
      const update = object(u, p);
      text(update.participant, `${p}.participant`);
      hash(update.envelopeDigest, `${p}.envelopeDigest`);
      if (!Number.isSafeInteger(update.exampleCount) || (update.exampleCount as number) <= 0) {
        throw shape(`${p}.exampleCount`, 'is not a positive integer');
      }
      hash(update.updateHash, `${p}.updateHash`);
      if (update.envelope === undefined) {
        throw shape(
          `${p}.envelope`,
          "is missing: every counted update records its participant's signed envelope (a log from a development version that did not record it cannot be audited)",
        );
      }
      recordedEnvelope(update.envelope, `${p}.envelope`);
    });
    hash(b.globalAdapterIn, `${path}.globalAdapterIn`);
    hash(b.globalAdapterOut, `${path}.globalAdapterOut`);
    dropped(b.dropped, `${path}.dropped`);
    const metrics = object(b.metrics, `${path}.metrics`);
    for (const [key, v] of Object.entries(metrics)) {
      if (typeof v !== 'string' && !Number.isSafeInteger(v)) {
        throw shape(
          `${path}.metrics.${key}`,
          'is neither an integer nor a string (write floats as decimal strings)',
        );
      }
    }
  },
  'round-aborted'(b, path) {
    string(b.reason, `${path}.reason`);
    dropped(b.dropped, `${path}.dropped`);
  },
};

// A recorded envelope is the signed one without its tensor schema, which the stored update
// determines (and which would add kilobytes per participant to every record).
const RECORDED_ENVELOPE_FIELDS: readonly string[] = [
  ...ENVELOPE_FIELDS.filter((f) => f !== 'tensorSchema'),
  'signature',
];

function recordedEnvelope(value: unknown, path: string): void {
  const e = object(value, path);
  for (const key of Object.keys(e)) {
    if (!RECORDED_ENVELOPE_FIELDS.includes(key))
      throw shape(`${path}.${key}`, 'is not a field of recorded envelopes');
  }
  for (const key of [
    'version',
    'round',
    'exampleCount',
    'payloadBytes',
    'chunkBytes',
    'chunkCount',
    'createdAt',
  ]) {
    count(e[key], `${path}.${key}`);
  }
  text(e.federation, `${path}.federation`);
  if (typeof e.participant !== 'string' || !/^[0-9a-f]{64}$/.test(e.participant)) {
    throw shape(`${path}.participant`, 'is not 64 lowercase hex digits (an Ed25519 public key)');
  }
  hash(e.globalAdapterHash, `${path}.globalAdapterHash`);
  hash(e.payloadHash, `${path}.payloadHash`);
  if (typeof e.signature !== 'string' || !SIGNATURE.test(e.signature)) {
    throw shape(`${path}.signature`, 'is not 128 lowercase hex digits (an Ed25519 signature)');
  }
}

function ruleRef(value: unknown, path: string): void {
  const rule = object(value, path);
  text(rule.name, `${path}.name`);
  object(rule.config, `${path}.config`);
}

function selection(value: unknown, path: string): void {
  const s = object(value, path);
  text(s.seed, `${path}.seed`);
  if (typeof s.fraction !== 'string' || !FRACTION.test(s.fraction)) {
    throw shape(`${path}.fraction`, 'is not a decimal string in (0, 1] such as "0.5"');
  }
  count(s.minimum, `${path}.minimum`);
  array(s.selected, `${path}.selected`).forEach((id, i) => text(id, `${path}.selected[${i}]`));
}

function dropped(value: unknown, path: string): void {
  array(value, path).forEach((d, i) => {
    const entry = object(d, `${path}[${i}]`);
    text(entry.participant, `${path}[${i}].participant`);
    string(entry.reason, `${path}[${i}].reason`);
  });
}

function object(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw shape(path, 'is not an object');
  return value as Record<string, unknown>;
}

function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw shape(path, 'is not an array');
  return value;
}

function string(value: unknown, path: string): void {
  if (typeof value !== 'string') throw shape(path, 'is not a string');
}

function text(value: unknown, path: string): void {
  if (typeof value !== 'string' || value.length === 0) throw shape(path, 'is not a non-empty string');
}

function count(value: unknown, path: string): void {
  if (!Number.isSafeInteger(value) || (value as number) < 0)
    throw shape(path, 'is not a non-negative integer');
}

function hash(value: unknown, path: string): void {
  if (!isRecordHash(value)) throw shape(path, 'is not a content hash "sha256:" + 64 lowercase hex digits');
}

function shape(path: string, why: string): RoundLogError {
  return new RoundLogError('ROUND_RECORD_SHAPE', `${path} ${why}`);
}
