// What the verifier reports: a problem per failed rule (its code, and a message that starts with
// the record it is about), a report per round and one for the whole log.

import type { TensorCollection } from '../tensors/tensor-entries.ts';
import type { RoundRecordKind } from './record.ts';

export type VerificationProblemCode =
  /** The record lacks a field, has an unknown one, a malformed value, or no canonical encoding. */
  | 'RECORD_SHAPE'
  /** The record's hash is not the hash of its content: it was edited after signing. */
  | 'RECORD_HASH'
  /** The coordinator's signature over the record's hash is missing, invalid or non-canonical. */
  | 'RECORD_SIGNATURE'
  /** prevHash is not the previous record's hash: a record was removed, inserted or reordered. */
  | 'CHAIN_BROKEN'
  /** seq is not the record's position. */
  | 'SEQ_GAP'
  | 'FEDERATION_MISMATCH'
  | 'TIME_BACKWARDS'
  /** The first record is not a config record naming the initial global adapter. */
  | 'FIRST_NOT_CONFIG'
  /** The record's round field is not the round it belongs to. */
  | 'ROUND_FIELD'
  /** A round opens while another is open, out of sequence, or closes without having opened. */
  | 'ROUND_ORDER'
  | 'ALREADY_ENROLLED'
  /**
   * A signing key already enrolled (by another participant id, revoked or not) is enrolled again:
   * one participant would be counted, and selected, twice.
   */
  | 'KEY_ALREADY_ENROLLED'
  /** An enrol record's participant id is not the fingerprint of the keys it records. */
  | 'PARTICIPANT_ID'
  | 'NOT_ENROLLED'
  /** A rename record's signature is not its participant's over the federation, name and nonce. */
  | 'RENAME_SIGNATURE'
  /** A rename record carries a nonce an earlier rename carried: a replayed request. */
  | 'RENAME_REPLAYED'
  /** A rename record's name is one the protocol refuses (empty, too long, spaces around it). */
  | 'RENAME_NAME'
  /** A revoked participant is enrolled again, revoked again, or has an update counted. */
  | 'REVOKED_PARTICIPANT'
  /** The selected participants are not those the seed selects from the eligible participants. */
  | 'SELECTION_MISMATCH'
  /** A round opens with no participant selected. */
  | 'SELECTION_EMPTY'
  /**
   * A round-open record's reveal is missing, is not the next value of the seed chain the config
   * record committed to (seed-chain.ts), repeats an earlier one, or comes after the chain is spent;
   * or a commitment appears after the first config record.
   */
  | 'SEED_REVEAL'
  /** A round-open record's seed is not the one its reveal fixes. */
  | 'SEED_NOT_DERIVED'
  | 'NOT_SELECTED'
  /** A participant's update is counted twice in one round. */
  | 'DUPLICATE_UPDATE'
  /** Counted updates are not listed in ascending order of participant id. */
  | 'UPDATES_ORDER'
  /** An envelope digest already counted (in this round or an earlier one) is counted again. */
  | 'REPLAYED_ENVELOPE'
  | 'DROPPED_AND_COUNTED'
  /** A round is closed with no counted update (it should have been aborted). */
  | 'NO_UPDATES'
  /** The close's rule or selection differ from the open's. */
  | 'OPEN_CLOSE_MISMATCH'
  /** A round trains from another adapter than the current global adapter. */
  | 'GLOBAL_MISMATCH'
  | 'UNKNOWN_RULE'
  | 'RULE_CONFIG'
  /** A blob's tensors do not hash to the name it is stored under, or it cannot be read. */
  | 'BLOB_CORRUPT'
  /** A blob the log names is not in the blob store: the round cannot be checked, so it fails. */
  | 'BLOB_MISSING'
  /** A stored update does not fit the global adapter (names, shapes, finite values). */
  | 'UPDATE_INVALID'
  /**
   * A counted update is beyond the federation's limits its config record sets (example count,
   * upload size, norm bound): the coordinator would have refused it.
   */
  | 'UPDATE_LIMIT'
  /**
   * The config record holds a federation config that does not parse, or (when the audit requires
   * one) holds none: the limits every update is held to would go unchecked.
   */
  | 'CONFIG_UNREADABLE'
  /** The config record's configHash is not the hash of the config it holds. */
  | 'CONFIG_HASH'
  /** A round-closed record's held-out means are not those of its counted updates' signed figures. */
  | 'HELD_OUT_MISMATCH'
  /** The rule applied to the stored updates does not give the recorded new global adapter. */
  | 'AGGREGATION_MISMATCH'
  /**
   * A counted update's recorded envelope does not bind its participant to it: another key, other
   * fields than the record's, a digest or signature that does not verify, or a payload hash that
   * is not the stored tensors'.
   */
  | 'ENVELOPE'
  /** A finished record states other rounds or another final adapter than the log shows. */
  | 'FINISHED_MISMATCH'
  /** A round opens, or the federation finishes again, after a finished record. */
  | 'AFTER_FINISHED'
  /** The pinned tree head (audit --head) is not the coordinator's, or is another federation's. */
  | 'HEAD_SIGNATURE'
  /** The log holds fewer records than the pinned tree head covers: its tail was removed. */
  | 'HEAD_BEYOND_LOG'
  /** The log's first records do not form the tree the pinned head signed: they were rewritten. */
  | 'HEAD_ROOT_MISMATCH'
  /** A line of the log file is not a record (not UTF-8 or JSON) or not in canonical form. */
  | 'LINE_DAMAGED'
  /** A round's recorded privacy account is not the one the accountant gives from the log. */
  | 'PRIVACY_MISMATCH'
  /** A round opened although it did not fit in the federation's privacy budget. */
  | 'PRIVACY_BUDGET'
  /** A DP round-open record commits to no noise seed, or the seed file does not match it. */
  | 'NOISE_COMMITMENT'
  /**
   * A secure round's phase record comes out of order: outside an open round, twice, before the
   * phase it follows, or a secure round-closed without all three phases.
   */
  | 'SECAGG_ORDER'
  /**
   * A secure round's sets do not nest: an advert from a participant not selected, U2 not within
   * U1, survivors and dropped not splitting U2, masked inputs other than the survivors, a reveal
   * from a non-survivor or of a share of the wrong kind; or a list out of order.
   */
  | 'SECAGG_MEMBERSHIP'
  /** An advert, shares entry or reveal is not signed by its participant's enrolled key. */
  | 'SECAGG_SIGNATURE'
  /** The secagg-keys record's graph (kind, degree, seed) or threshold is not the one the config and round-open record give. */
  | 'SECAGG_GRAPH'
  /** A secure round went on with fewer than t participants in a phase: it should have aborted. */
  | 'SECAGG_THRESHOLD'
  /** The unmask record would expose a survivor's input (every neighbour it masked with dropped). */
  | 'SECAGG_EXPOSED'
  /**
   * A federation whose config turns secure aggregation on closes a round with plaintext updates,
   * or without one (or a secure round in a federation without it).
   */
  | 'SECAGG_PLAINTEXT'
  /**
   * The revealed shares do not reconstruct a survivor's self seed matching its commitment, or a
   * dropped participant's advertised mask key; or too few were revealed.
   */
  | 'SECAGG_SHARES'
  /** A stored masked input is not the round's vector, or the unmasked sum's total weight is not the recorded one. */
  | 'SECAGG_SUM';

export interface VerificationProblem {
  /** The record's seq (its position when the record has no readable seq). */
  seq: number;
  kind?: RoundRecordKind;
  round?: number;
  code: VerificationProblemCode;
  /** Starts with the record it is about: "record 12 (round-closed, round 3): ...". */
  message: string;
}

export interface RoundReport {
  round: number;
  status: 'open' | 'closed' | 'aborted';
  /** The aggregation rule the round announced. */
  rule: string;
  selected: string[];
  /** Participants whose updates were counted (closed rounds). */
  participants: string[];
  /**
   * verified: the rule recomputed from the stored updates gives the recorded adapter and every
   * update's envelope verifies; failed: it does not, or a blob is missing or corrupt; unchecked:
   * no blob store was given, or the round did not close.
   */
  aggregation: 'verified' | 'unchecked' | 'failed';
  /**
   * DP rounds with central noise: verified when the noise was regenerated from the coordinator's
   * seed file (matching the round's commitment) and the adapter recomputed bit for bit; unchecked
   * when the folder has no seed file for the round (then so is the aggregation).
   */
  noise?: 'verified' | 'unchecked';
  /** Blobs the round names that the blob store does not have (each is also a BLOB_MISSING problem). */
  missingBlobs: string[];
  ok: boolean;
  problems: VerificationProblem[];
}

export interface VerificationReport {
  ok: boolean;
  /** Number of records examined. */
  records: number;
  /** The last record's hash (ZERO_HASH for an empty log): publish it to pin the log's tail. */
  head: string;
  rounds: RoundReport[];
  /** Every problem, in record order. */
  problems: VerificationProblem[];
  /** The first problem: the first record that fails and why. */
  firstFailure?: VerificationProblem;
  /**
   * committed: the first config record commits to a seed chain, so every round's selection seed
   * was fixed before anyone enrolled (and each was checked); unconstrained: a log without one,
   * whose seeds the coordinator drew as it pleased.
   */
  selectionSeeds?: 'committed' | 'unconstrained';
}

/** Looks up a blob in the coordinator's content-addressed store: the tensors stored under `hash`. */
export type BlobLookup = (hash: string) => TensorCollection | undefined;

export interface VerifyOptions {
  /** The coordinator's Ed25519 public key (32 bytes); every record's signature is checked with it. */
  coordinatorPublicKey?: Uint8Array;
  /** The federation the log must belong to; by default the first record's. */
  federation?: string;
  /**
   * The blob store. When given, every blob the log names must be in it; updates' envelopes are
   * verified against them and aggregation is recomputed. Without it (the coordinator checking a
   * record before appending it) only the log itself is checked.
   */
  blobs?: BlobLookup;
  /**
   * The first config record must hold the federation config (`settings.config`, as `fedit
   * coordinator init` writes it). The audit of a federation folder requires it, so a coordinator
   * cannot switch off the limit checks by leaving the config out; logs written by tests may not.
   */
  requireConfig?: boolean;
  /**
   * The coordinator's DP noise seed of a round (federation/noise-seeds.ts), undefined when the
   * auditor was not given it: that round's noise and aggregation then go unchecked, and say so.
   */
  noiseSeeds?: (round: number) => Uint8Array | undefined;
}

/** Reports a problem of the record being checked (the checker adds which record it is). */
export type ReportProblem = (code: VerificationProblemCode, message: string) => void;
