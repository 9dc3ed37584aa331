// The shape of a round record as read from a log, declared once with the schema module: every
// field, its type and form, and the body of each kind. record.ts derives the record types from
// these declarations. The first check a record meets, before its hash or any rule: a record that
// fails it is named by field path (ROUND_RECORD_SHAPE) and judged no further.
//
// Records word a fault as what the value is not ("record.seq is not a non-negative integer"), so
// the leaves (record-leaves.ts) are predicates in that wording; a secure round's parts are in
// record-shape-secagg.ts. A body keeps fields it does not declare, at any
// depth, because the record's hash and signature cover them (a newer coordinator may write more);
// an unknown top-level field, or an unknown field of a recorded envelope, is refused.

import type { AggregationConfig } from '../aggregation/rule.ts';
import { RENAME_NONCE_BYTES } from '../protocol/rename.ts';
import {
  SchemaError,
  dictionary,
  literal,
  object,
  optional,
  predicate,
  union,
  type ObjectSchema,
  type Shape,
} from '../schema/schema.ts';
import type { CanonicalObject } from './canonical.ts';
import { ROUND_RECORD_KINDS, type RoundRecord, type RoundRecordKind } from './record.ts';
import { RoundLogError } from './round-error.ts';
import {
  NOT_AN_OBJECT,
  chainValue,
  count,
  entries,
  factor,
  fraction,
  hash,
  hexBytes,
  isNot,
  metric,
  name,
  opaque,
  part,
  positive,
  recordedEnvelope,
  signature,
  time,
  words,
} from './record-leaves.ts';
import {
  perParticipant,
  secaggAdvert,
  secaggGraph,
  secaggShared,
  secureSection,
} from './record-shape-secagg.ts';

export { isRecordHash, isRecordTime, recordedEnvelope } from './record-leaves.ts';

const SIX_DECIMALS = /^(?:0|[1-9]\d*)\.\d{6}$/;

/**
 * Checks that `value` has the shape of a round record (every field, its type and form, the body
 * of its kind) and returns it typed. Throws RoundLogError('ROUND_RECORD_SHAPE') naming the field.
 * Unknown fields in a body are kept (they are part of the hash); unknown top-level fields are not.
 */
export function parseRoundRecord(value: unknown, label = 'record'): RoundRecord {
  try {
    roundRecord.parse(value, label);
  } catch (error) {
    if (error instanceof SchemaError) throw new RoundLogError('ROUND_RECORD_SHAPE', error.message);
    throw error;
  }
  // The record as read, not the schema's copy: the hash and the canonical form are checked over
  // exactly what the log holds, and a line that is canonical already has its keys in canonical
  // order (the copy has them in declared order, which makes canonicalJson twice as slow).
  return value as RoundRecord;
}

// ---- leaves, in the records' wording -----------------------------------------------------------
// ---- the parts of bodies -----------------------------------------------------------------------

export const ruleRef = part({
  /** An aggregation rule's registered name ("fedit"). */
  name,
  config: opaque<AggregationConfig>(),
});

/** How the round's participants were drawn (selection.ts), and whom it drew, sorted. */
export const selection = part({
  seed: name,
  /** Decimal string in (0, 1], e.g. "0.5". */
  fraction,
  minimum: count,
  /** Decimal string >= 1, e.g. "1.3": how many more than the target are selected. Absent = 1. */
  overSelection: optional(factor),
  /**
   * The candidates the selection drew from: the participants ready when the round opened, sorted
   * (UTF-8 byte order). Absent in logs written before readiness, whose rounds drew from everyone
   * eligible.
   */
  ready: optional(entries(name)),
  selected: entries(name),
  /**
   * The value of the seed chain this round-open record reveals (seed-chain.ts), from which the
   * seed is derived. Absent in logs whose config record commits to no chain.
   */
  reveal: optional(chainValue),
});

/** The seed chain the first config record commits to (seed-chain.ts). */
export const seedChainCommitment = part({
  /** hex(H^N(s)). */
  commitment: chainValue,
  /** N: how many round-open records the chain covers. */
  length: positive,
});

export const droppedParticipant = part({
  participant: name,
  /** Why the participant's update did not count ("late", "invalid: ...", "norm bound", ...). */
  reason: words,
});

export const countedUpdate = part({
  participant: name,
  /** The digest of the participant's signed envelope ("sha256:..."); never counted twice in a log. */
  envelopeDigest: hash,
  /** n_k, the weight FedIT gives the update: a positive integer. */
  exampleCount: positive,
  /** hashTensors of the update's tensors: their id in the blob store. */
  updateHash: hash,
  /**
   * The participant's signed envelope, so an auditor can check that the participant, not the
   * coordinator, committed to these tensors for this round.
   */
  envelope: recordedEnvelope,
});

const dropped = entries(droppedParticipant);

const sixDecimals = isNot<string>(
  (v) => typeof v === 'string' && SIX_DECIMALS.test(v),
  'a decimal string with six decimals such as "1.234567"',
);

/** The example-weighted means of the counted updates' held-out figures (held-out.ts). */
export const heldOutMeansShape = part({
  reports: positive,
  examples: positive,
  meanLoss: sixDecimals,
  exactMatchExamples: optional(positive),
  exactMatch: optional(sixDecimals),
});

/** hex(SHA-256("fedit/dp/noise-seed/v1" || seed)) of the round's DP noise seed (dp-step.ts). */
const noiseCommitment = hexBytes(32, 'a SHA-256 commitment to the noise seed');
const decimal = isNot<string>(
  (v) => typeof v === 'string' && v.length <= 32 && /^(?:0|[1-9]\d*)(?:\.\d+)?(?:e[+-]?\d+)?$/.test(v),
  'a decimal string such as "1.1"',
);

/**
 * The privacy a DP round spent, as the accountant (privacy/accountant.ts) computes it from the
 * log (rounds/privacy.ts): decimal strings are String() of binary64 values.
 */
export const roundPrivacyShape = part({
  /** central: the coordinator added the noise; distributed: each participant added its share. */
  noise: isNot<string>((v) => v === 'central' || v === 'distributed', '"central" or "distributed"'),
  /** The sampling of this round: q = selected / eligible. */
  sampled: part({ selected: count, eligible: positive }),
  noiseMultiplier: decimal,
  clipNorm: decimal,
  delta: decimal,
  /** epsilon after this round minus epsilon before it. */
  epsilonRound: decimal,
  /** epsilon spent by every DP round of the log so far, this one included, at delta. */
  epsilon: decimal,
  /** The accountant's history (runs of rounds with the same parameters). */
  history: entries(part({ selected: count, eligible: positive, noiseMultiplier: decimal, rounds: positive })),
});

// ---- a secure round's parts (secagg/round/: the protocol and what each field commits to) ---------
// ---- the bodies --------------------------------------------------------------------------------

/** The body of each kind of record. */
export const RECORD_BODIES = {
  /** The federation's settings. The first record is a config record that names the initial adapter. */
  config: part({
    /** The operator's federation settings, opaque to the log (base model, LoRA, training, privacy). */
    settings: opaque<CanonicalObject>(),
    /** When present, the global adapter from here on (hashTensors of its tensors). */
    globalAdapter: optional(hash),
    /**
     * The seed chain every round's selection seed comes from (seed-chain.ts): only in the first
     * config record. Absent in logs written before it, whose seeds nothing constrains.
     */
    seedChain: optional(seedChainCommitment),
  }),
  enrol: part({
    participant: name,
    /** The participant's Ed25519 public key as the protocol writes it. */
    publicKey: name,
    /**
     * The participant's X25519 public key (hex), which the coordinator records so that the
     * participant id can be checked as the fingerprint of both keys.
     */
    boxKey: optional(name),
    /** The name the participant chose to be shown under. */
    displayName: optional(words),
  }),
  /**
   * From this record on, the participant is shown as displayName. The participant asked for it:
   * signature is its Ed25519 signature (hex) of renameDigest({ federation, participant,
   * displayName, nonce }) under 'fedit/rename/v1' (protocol/rename.ts), nonce hex of its 32
   * random bytes, never seen before in the log. Absent from logs written before renaming existed.
   */
  rename: part({
    participant: name,
    displayName: words,
    nonce: hexBytes(RENAME_NONCE_BYTES, 'a 32-byte nonce'),
    signature,
  }),
  /** From this record on, the participant's updates no longer count. Revocation is final. */
  revoke: part({ participant: name, reason: words }),
  'round-open': part({
    rule: ruleRef,
    /** Drawn from the ready participants (selection.ready), else from those eligible. */
    selection,
    /** The global adapter the round trains from. */
    globalAdapter: hash,
    /** Time after which uploads are late. */
    deadline: time,
    /** The round closes as soon as this many updates are counted (selection.ts's quorum). */
    quorum: optional(positive),
    /**
     * The round's place in the training schedule: 1 + the rounds aggregated before it (aborted
     * rounds do not count). The learning-rate schedule and SCAFFOLD's terms use it. Absent in
     * logs written before it, where the round number served.
     */
    trainingRound: optional(positive),
    /**
     * The server optimizer's state the round steps from (the last closed round's serverStateOut),
     * so that SCAFFOLD's participants fetch the control variate c the coordinator signed for.
     * Absent before the first step (zeros), and in logs written before it.
     */
    serverStateIn: optional(hash),
    /**
     * With central DP noise: the commitment to the round's noise seed, drawn before any update
     * was seen (dp-step.ts). Absent without differential privacy.
     */
    noiseCommitment: optional(noiseCommitment),
  }),
  'round-closed': part({
    /** Same as the round-open record's. */
    rule: ruleRef,
    /** Same as the round-open record's. */
    selection,
    /** The counted updates, sorted by participant id (UTF-8 byte order): the order they were added. */
    updates: entries(countedUpdate),
    globalAdapterIn: hash,
    /** The rule applied to the updates in the listed order; the next round's global adapter. */
    globalAdapterOut: hash,
    /**
     * The server optimizer's state this round stepped from (the last closed round's
     * serverStateOut; absent before the first step: zeros) and the state it leaves, as blobs.
     * Both absent when the rule config has no server optimizer that keeps state.
     */
    serverStateIn: optional(hash),
    serverStateOut: optional(hash),
    dropped,
    /** Integers as numbers, anything else as strings (e.g. "train_loss": "1.8342"). */
    metrics: dictionary(metric, NOT_AN_OBJECT),
    /**
     * The means of the held-out figures the counted updates signed, for globalAdapterIn
     * (held-out.ts); absent when none sent figures.
     */
    heldOut: optional(heldOutMeansShape),
    /** With differential privacy: what the round spent and the total so far (rounds/privacy.ts). */
    privacy: optional(roundPrivacyShape),
    /** A secure round (updates then empty): the masked inputs and reveals the sum comes from. */
    secure: optional(secureSection),
  }),
  /** The round ended without a new global adapter; the global adapter is unchanged. */
  'round-aborted': part({ reason: words, dropped }),
  /**
   * The federation ran all its rounds: `rounds` aggregated, ending with `globalAdapter`. Written
   * once, after the last round closed, so that a log cut after it is seen to lack its end. Absent
   * from logs written before it existed.
   */
  finished: part({
    rounds: count,
    globalAdapter: hash,
    /**
     * Why the federation finished before its configured rounds (the privacy budget was spent).
     * Absent when it ran them all.
     */
    reason: optional(words),
  }),
  /** A secure round's U1: the graph, the threshold and the keys each participant advertised. */
  'secagg-keys': part({
    graph: secaggGraph,
    threshold: positive,
    /** Sorted by participant id; a participant's secure id is 1 + its index here. */
    advertised: perParticipant(secaggAdvert),
  }),
  /** U2: who sent its boxes of shares, with its commitments, sorted by participant id. */
  'secagg-shares': part({ shared: perParticipant(secaggShared) }),
  /** U3 (survivors: their masked inputs arrived) and U2 \ U3 (dropped), each sorted. */
  'secagg-unmask': part({ survivors: perParticipant(name), dropped: perParticipant(name) }),
  /**
   * The consistency check (secagg/round/consistency.ts): the survivors' signatures of the
   * secagg-unmask record, gathered before anyone reveals, sorted by participant.
   */
  'secagg-consistency': part({
    /** The hash of the round's secagg-unmask record: what each survivor signed. */
    unmaskHash: hash,
    signatures: perParticipant(part({ participant: name, signature })),
  }),
} as const satisfies { [K in RoundRecordKind]: ObjectSchema<Shape> };

// ---- the record --------------------------------------------------------------------------------

const RECORD_WORDING = { wording: { ...NOT_AN_OBJECT, notAField: 'is not a field of round records' } };

const recordFields = {
  seq: count,
  federation: name,
  round: count,
  /** Reached only when no kind's record matched, so it words the kinds there are. */
  kind: predicate<RoundRecordKind>(
    (v) => (ROUND_RECORD_KINDS as readonly unknown[]).includes(v),
    (v) => `is ${JSON.stringify(v)}; kinds are ${ROUND_RECORD_KINDS.join(', ')}`,
  ),
  prevHash: hash,
  time,
  body: part({}),
  hash,
  signature,
};

// One record per kind, told apart by `kind`; a record of no known kind is reported by the last.
const roundRecord = union('kind', [
  ...ROUND_RECORD_KINDS.map((kind) =>
    object({ ...recordFields, kind: literal(kind), body: RECORD_BODIES[kind] }, RECORD_WORDING),
  ),
  object(recordFields, RECORD_WORDING),
]);
