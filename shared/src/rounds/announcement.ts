// What a participant acts on, taken from signed round records: the coordinator does not tell a
// participant what a round is, it hands over the round's record from its log, signed under the
// coordinator key the invite pins, and the participant reads every field it uses from that record.
//
//   'round:open'          {record: round-open}                the round, whom it selected, the global
//                                                             adapter, the deadline, SCAFFOLD's state
//   'round:closed'        {record: round-closed}              the new global adapter, updates counted
//                         {record: round-aborted, opened}     opened: the round's round-open record,
//                                                             which names the unchanged global adapter
//   'federation:finished' {record: round-closed}              the last aggregated round: the final adapter
//   'federation:info' ack {record: config, lastClosed?}       the config text and its configHash;
//                                                             with differential privacy the last
//                                                             round-closed record (epsilon so far)
//   'secagg:phase'        {record: secagg-keys | secagg-shares | secagg-unmask}   a secure round's
//                                                             phase (SECAGG_PHASE_KINDS); the
//                                                             engines (secagg/round/) check the rest
//
// verifyAnnouncedRecord is the check every one of them meets first: the record's shape (the log's
// own parser, record-shape.ts), its hash over its content, the coordinator's Ed25519 signature of
// that hash (record.ts), its federation and its kind. The training settings of a round are not sent
// at all: they follow from the config the participant agreed to (whose record is signed too) and
// the round-open record (roundLearningRate of its trainingRound; the seed is the round number),
// exactly as the coordinator derives them. What a single record cannot show (that it is the newest,
// not an old one replayed) the participant checks against the highest record it has seen.
import { fingerprint, type PublicIdentity } from '../crypto/identity.ts';
import { FeditError } from '../errors.ts';
import type { FederationConfig } from '../federation/config.ts';
import type { ContentHash } from '../protocol/fields.ts';
import { roundLearningRate } from '../federation/schedule.ts';
import type { HeldOutMeans } from './held-out.ts';
import { parseRoundRecord } from './record-shape.ts';
import { RoundLogError } from './round-error.ts';
import {
  countedParticipants,
  roundRecordHash,
  verifyRoundRecordSignature,
  type RoundRecord,
  type RoundRecordKind,
  type RoundRecordOf,
} from './record.ts';

/** The coordinator a participant trusts: the federation its invite names and the keys it pins. */
export interface AnnouncementTrust {
  federation: string;
  coordinator: PublicIdentity;
}

/** Where a view came from in the log: what the participant's replay check compares. */
export interface RecordPosition {
  seq: number;
  hash: string;
}

/** Local training settings of one round, as the round-open record and the config imply them. */
export interface RoundTraining {
  /** Optimizer steps each participant runs (config training.localSteps). */
  steps: number;
  /** The schedule's rate for the record's trainingRound (roundLearningRate). */
  learningRate: number;
  batchSize: number;
  /** Seed for data order and dropout, the round number; participants mix in their own id. */
  seed: number;
}

/** Round `round` is open: read from its signed round-open record. */
export interface RoundOpen {
  round: number;
  selected: string[];
  /** The adapter to start from (fetch it with 'adapter:get'; its bytes must hash to this). */
  globalAdapterHash: ContentHash;
  /** Uploads must be committed before this time, ms since the epoch. */
  deadline: number;
  training: RoundTraining;
  /** SCAFFOLD: the server state holding c the round starts from; absent before the first step. */
  control?: ContentHash;
  signed: RecordPosition;
}

/** Round `round` is over: read from its signed round-closed or round-aborted record. */
export interface RoundClosed {
  round: number;
  outcome: 'aggregated' | 'aborted';
  /** The global adapter after the round (unchanged when aborted: the round-open record's). */
  adapterHash: ContentHash;
  /** Updates counted into the aggregate. */
  participants: number;
  /** The record's held-out means, when the counted updates sent figures. */
  heldOut?: HeldOutMeans;
  /**
   * With differential privacy: the epsilon the log says was spent after this round, at delta
   * (decimal strings, as the record writes them; rounds/privacy.ts).
   */
  privacy?: { epsilon: string; delta: string };
  signed: RecordPosition;
}

/** The federation ran all its rounds: read from the signed record of its last aggregated round. */
export interface FederationFinished {
  /** Rounds the federation aggregated: its configured number. */
  rounds: number;
  /** The final global adapter. */
  adapterHash: ContentHash;
  /** The round whose result `adapterHash` is. */
  round: number;
  /** Updates counted into that round's aggregate. */
  updates: number;
  signed: RecordPosition;
}

/** The federation's settings: read from its signed config record. */
export interface AnnouncedConfig {
  /** The config JSON text exactly as recorded. */
  config: string;
  /** The hash the record announces for it (the participant checks that the text hashes to it). */
  configHash: string;
}

/** A server message whose record is not the federation coordinator's, or is not the one it claims. */
export class AnnouncementError extends FeditError {
  constructor(message: string) {
    super('ANNOUNCEMENT_FORGED', message);
  }
}

/**
 * The record `value` after every check a single record allows: a round record of one of `kinds`,
 * whose hash is its content's, signed by `trust.coordinator`, of `trust.federation`. `what` names
 * the message for the error ("the round announcement"). Throws AnnouncementError.
 */
export function verifyAnnouncedRecord<K extends RoundRecordKind>(
  value: unknown,
  kinds: readonly K[],
  trust: AnnouncementTrust,
  what: string,
): Extract<RoundRecord, { kind: K }> {
  let record: RoundRecord;
  try {
    record = parseRoundRecord(value, 'record');
  } catch (error) {
    if (!(error instanceof RoundLogError)) throw error;
    throw new AnnouncementError(`${what} does not carry a round record: ${error.message}`);
  }
  const named = `${what} (${describe(record)})`;
  if (roundRecordHash(record) !== record.hash)
    throw new AnnouncementError(`${named} was altered: its content does not hash to its hash ${record.hash}`);
  if (!verifyRoundRecordSignature(record, trust.coordinator.sign))
    throw new AnnouncementError(
      `${named} is not signed by this federation's coordinator (fingerprint ${fingerprint(trust.coordinator)}): it was forged or altered on the way`,
    );
  if (record.federation !== trust.federation)
    throw new AnnouncementError(`${named} is of federation ${record.federation}, not ${trust.federation}`);
  if (!(kinds as readonly string[]).includes(record.kind))
    throw new AnnouncementError(`${named} is a ${record.kind} record, where ${kinds.join(' or ')} belongs`);
  return record as Extract<RoundRecord, { kind: K }>;
}

function describe(record: RoundRecord): string {
  const round = record.kind.startsWith('round-') ? `round ${record.round}'s ` : '';
  return `${round}${record.kind} record ${record.seq}`;
}

const position = (record: RoundRecord): RecordPosition => ({ seq: record.seq, hash: record.hash });

/** The open round as its verified round-open record and the federation's config say it is. */
export function roundOpenView(record: RoundRecordOf<'round-open'>, config: FederationConfig): RoundOpen {
  const { body } = record;
  const trainingRound = body.trainingRound ?? record.round;
  return {
    round: record.round,
    selected: [...body.selection.selected],
    globalAdapterHash: body.globalAdapter as ContentHash,
    deadline: Date.parse(body.deadline),
    training: {
      steps: config.training.localSteps,
      learningRate: roundLearningRate(config, trainingRound),
      batchSize: config.training.batchSize,
      seed: record.round,
    },
    ...(body.serverStateIn !== undefined && { control: body.serverStateIn as ContentHash }),
    signed: position(record),
  };
}

/**
 * The closed round as its verified record says: a round-closed record, or a round-aborted one
 * with the round's round-open record (`opened`), which names the global adapter it leaves unchanged.
 */
export function roundClosedView(
  record: RoundRecordOf<'round-closed'> | RoundRecordOf<'round-aborted'>,
  opened?: RoundRecordOf<'round-open'>,
): RoundClosed {
  if (record.kind === 'round-closed') {
    const { body } = record;
    return {
      round: record.round,
      outcome: 'aggregated',
      adapterHash: body.globalAdapterOut as ContentHash,
      participants: countedParticipants(body).length,
      ...(body.heldOut && { heldOut: body.heldOut as HeldOutMeans }),
      ...(body.privacy && { privacy: { epsilon: body.privacy.epsilon, delta: body.privacy.delta } }),
      signed: position(record),
    };
  }
  if (!opened || opened.round !== record.round || opened.seq >= record.seq)
    throw new AnnouncementError(
      `round ${record.round}'s round-aborted record ${record.seq} comes without the record that opened the round`,
    );
  return {
    round: record.round,
    outcome: 'aborted',
    adapterHash: opened.body.globalAdapter as ContentHash,
    participants: 0,
    signed: position(record),
  };
}

/** The kinds of record 'secagg:phase' may carry: verifyAnnouncedRecord(value, SECAGG_PHASE_KINDS, ...). */
export const SECAGG_PHASE_KINDS = [
  'secagg-keys',
  'secagg-shares',
  'secagg-unmask',
  'secagg-consistency',
] as const;

/** The kinds of record 'federation:finished' may carry (one place, for a `finished` kind to join). */
export const FINISHED_RECORD_KINDS = ['round-closed'] as const;

/** The federation's end as the verified record of its last aggregated round says. */
export function federationFinishedView(
  record: RoundRecordOf<(typeof FINISHED_RECORD_KINDS)[number]>,
  config: FederationConfig,
): FederationFinished {
  return {
    rounds: config.rounds,
    adapterHash: record.body.globalAdapterOut as ContentHash,
    round: record.round,
    updates: countedParticipants(record.body).length,
    signed: position(record),
  };
}

/** The federation's settings as its verified config record holds them. */
export function configView(record: RoundRecordOf<'config'>, what: string): AnnouncedConfig {
  const { config, configHash } = record.body.settings;
  if (record.seq !== 0 || typeof config !== 'string' || typeof configHash !== 'string')
    throw new AnnouncementError(
      `${what} is not the federation's first record holding a config text and its hash (config record ${record.seq})`,
    );
  return { config, configHash };
}
