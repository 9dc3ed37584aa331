// Verification of a round log: what an auditor runs on a log alone (and, when the blob store is at
// hand, on the tensors it names), and what the coordinator runs on every record before appending
// it, so that its log always verifies.
//
// Checked, record by record:
//   integrity   the record's shape; its hash recomputed from its canonical encoding; the
//               coordinator's signature over that hash; seq = position; prevHash = previous hash
//               (ZERO_HASH first); one federation; time never decreasing
//   lifecycle   the first record is a config naming the initial global adapter; participants are
//               enrolled once and revoked at most once, for good; a signing key is enrolled once
//               (under one participant id, revoked or not); a participant id recorded with both of
//               its keys is their fingerprint; rounds open one at a time, numbered
//               1, 2, ..., and each is closed or aborted by the next round-related record for it
//   rounds      the rule exists and accepts its config; the selection is re-derived from its seed
//               over the participants eligible when the round opened; the round trains from the
//               current global adapter; the close repeats the open's rule, selection and adapter;
//               every counted update comes from an enrolled, unrevoked, selected participant, at most
//               once, listed in canonical order, with an envelope digest never seen before in the
//               log (a replay); its recorded envelope names the participant's enrolled key, the
//               federation, the round, the global adapter in and the example count of the record;
//               no one is both dropped and counted
//   tensors     with `blobs`: every blob the log names (the initial adapter, each round's adapters
//               in and out, every counted update) is there (a missing one is a problem, not a
//               skipped check) and hashes to its name; each update's envelope is the
//               participant's signature over exactly the stored tensors (envelope-record.ts); each
//               update fits the global adapter; the rule applied to the updates in the listed
//               order gives exactly globalAdapterOut
//   lines       through verifyRoundLogLines: a log line that is not a record, or not in canonical
//               form, is a problem naming the line (and the record and round its text names)

import type { Tensor } from '../tensors/tensor.ts';
import type { TensorCollection } from '../tensors/tensor-entries.ts';
import { hashTensors } from '../tensors/hash.ts';
import { FeditError } from '../errors.ts';
import { AggregationError } from '../aggregation/aggregation-error.ts';
import { aggregationRule } from '../aggregation/rules.ts';
import { compareUtf8, type AggregationRule } from '../aggregation/rule.ts';
import { adapterSchema, tensorsFromValues, tensorValues, type AdapterSchema } from '../aggregation/schema.ts';
import {
  parseRoundRecord,
  ROUND_RECORD_KINDS,
  roundRecordDigest,
  verifyRoundRecordSignature,
  ZERO_HASH,
  type CountedUpdate,
  type RoundClosedBody,
  type RoundOpenBody,
  type RoundRecord,
  type RoundRecordKind,
} from './record.ts';
import { canonicalJson } from './canonical.ts';
import { fingerprint } from '../crypto/identity.ts';
import { selectParticipants } from './selection.ts';
import { checkRecordedEnvelope } from './envelope-record.ts';
import type { LogLine } from './log.ts';

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
  /** A revoked participant is enrolled again, revoked again, or has an update counted. */
  | 'REVOKED_PARTICIPANT'
  /** The selected participants are not those the seed selects from the eligible participants. */
  | 'SELECTION_MISMATCH'
  /** A round opens with no participant selected. */
  | 'SELECTION_EMPTY'
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
  /** The rule applied to the stored updates does not give the recorded new global adapter. */
  | 'AGGREGATION_MISMATCH'
  /**
   * A counted update's recorded envelope does not bind its participant to it: another key, other
   * fields than the record's, a digest or signature that does not verify, or a payload hash that
   * is not the stored tensors'.
   */
  | 'ENVELOPE'
  /** A line of the log file is not a record (not UTF-8 or JSON) or not in canonical form. */
  | 'LINE_DAMAGED';

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
}

/**
 * Verifies a whole round log (records in file order). Never throws on bad records: every problem
 * is in the report, with the first one in `firstFailure`.
 */
export function verifyRoundLog(records: readonly unknown[], options: VerifyOptions = {}): VerificationReport {
  const checker = new RoundLogChecker(options);
  for (const record of records) checker.add(record);
  return checker.report();
}

/**
 * Verifies a round log from its lines as scanRoundLog reads them, so that a line that is not a
 * record is one more problem (naming the line) rather than an error that stops the audit.
 */
export function verifyRoundLogLines(
  lines: readonly LogLine[],
  options: VerifyOptions = {},
): VerificationReport {
  const checker = new RoundLogChecker(options);
  for (const line of lines) checker.addLine(line);
  return checker.report();
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;

/** A recorded signing key as compared between enrolments: hex in either case is the same key. */
const enrolKey = (publicKey: string) => (HEX_KEY.test(publicKey) ? publicKey.toLowerCase() : publicKey);

/**
 * The participant id the coordinator derives from an enrolment's keys (the fingerprint of the
 * signing and box keys, as the protocol writes them: 64 hex digits each), or undefined when the
 * record does not carry both in that form (logs written by tests, with made-up keys).
 */
function fingerprintOf(publicKey: string, boxKey: unknown): string | undefined {
  if (!HEX_KEY.test(publicKey) || typeof boxKey !== 'string' || !HEX_KEY.test(boxKey)) return undefined;
  return fingerprint({
    sign: new Uint8Array(Buffer.from(publicKey, 'hex')),
    box: new Uint8Array(Buffer.from(boxKey, 'hex')),
  });
}

interface ParticipantState {
  publicKey: string;
  revoked: boolean;
}

interface Examination {
  record?: RoundRecord;
  problems: VerificationProblem[];
  aggregation: RoundReport['aggregation'];
  missingBlobs: string[];
}

/**
 * The verifier as a state machine over records, for a log that grows: `check` says what is wrong
 * with the next record without changing anything, `commit` then takes it in. RoundLog checks each
 * record before writing it; verifyRoundLog adds records one by one.
 */
export class RoundLogChecker {
  readonly #options: VerifyOptions;
  #position = 0;
  #expectedSeq = 0;
  #head = ZERO_HASH;
  #federation: string | undefined;
  #lastTime: string | undefined;
  #lastRound = 0;
  #open: { round: number; body: RoundOpenBody } | undefined;
  #globalAdapter: string | undefined;
  readonly #participants = new Map<string, ParticipantState>();
  /** Participant id by enrolled signing key (enrolKey form). */
  readonly #participantByKey = new Map<string, string>();
  readonly #envelopes = new Set<string>();
  readonly #rounds = new Map<number, RoundReport>();
  readonly #problems: VerificationProblem[] = [];
  /** The previous line was not a record: the next one's seq and prevHash cannot be checked. */
  #afterDamage = false;

  constructor(options: VerifyOptions = {}) {
    this.#options = options;
    this.#federation = options.federation;
  }

  /** seq of the next record. */
  get nextSeq(): number {
    return this.#expectedSeq;
  }

  /** Hash of the last record taken in (ZERO_HASH when none). */
  get head(): string {
    return this.#head;
  }

  get federation(): string | undefined {
    return this.#federation;
  }

  /** Time of the last record taken in. */
  get lastTime(): string | undefined {
    return this.#lastTime;
  }

  /** Number of the last round opened (0 before the first). */
  get lastRound(): number {
    return this.#lastRound;
  }

  /** The round open now, if any, with its open record's body. */
  get openRound(): { round: number; body: RoundOpenBody } | undefined {
    return this.#open;
  }

  /** The current global adapter's hash. */
  get globalAdapter(): string | undefined {
    return this.#globalAdapter;
  }

  /** Participants enrolled and not revoked, in canonical order: whom a round may select. */
  eligibleParticipants(): string[] {
    return [...this.#participants]
      .filter(([, p]) => !p.revoked)
      .map(([id]) => id)
      .sort(compareUtf8);
  }

  /** The public key an enrolled (possibly revoked) participant enrolled with. */
  participantKey(participant: string): string | undefined {
    return this.#participants.get(participant)?.publicKey;
  }

  isRevoked(participant: string): boolean {
    return this.#participants.get(participant)?.revoked ?? false;
  }

  /** Whether an update with this envelope digest was already counted. */
  hasEnvelope(digest: string): boolean {
    return this.#envelopes.has(digest);
  }

  /** What is wrong with `record` as the next record; `commit` takes it in (problems or not). */
  check(record: unknown): { problems: VerificationProblem[]; commit: () => void } {
    const exam = this.#examine(record);
    return { problems: exam.problems, commit: () => this.#commit(record, exam) };
  }

  /** Checks `record` as the next record, takes it in, and returns its problems. */
  add(record: unknown): VerificationProblem[] {
    const { problems, commit } = this.check(record);
    commit();
    return problems;
  }

  /**
   * Takes in one line of the log file: its record, plus a LINE_DAMAGED problem when the line is
   * not a record at all (the record and round are then read from its text where possible) or is
   * a record not written in canonical form (the hash covers the canonical form, so such an edit
   * would otherwise go unseen).
   */
  addLine(line: LogLine): VerificationProblem[] {
    if (line.value === undefined) return [this.#addDamaged(line)];
    const problems = this.add(line.value);
    if (line.damage !== undefined && problems.every((p) => p.code !== 'RECORD_SHAPE')) {
      const record = line.value as { seq: number; kind: RoundRecordKind; round: number };
      const isRound = record.kind.startsWith('round-');
      const problem: VerificationProblem = {
        seq: record.seq,
        kind: record.kind,
        code: 'LINE_DAMAGED',
        message: `line ${line.line} of the log, record ${record.seq} (${record.kind}${isRound ? `, round ${record.round}` : ''}): ${line.damage}; it was edited after it was written`,
      };
      if (isRound) {
        problem.round = record.round;
        this.#roundReport(record.round, '').problems.push(problem);
      }
      this.#problems.push(problem);
      problems.push(problem);
    }
    return problems;
  }

  #addDamaged(line: LogLine): VerificationProblem {
    const position = this.#position++;
    const text = line.text ?? '';
    const number = (field: string) => {
      const match = new RegExp(`"${field}":(\\d+)`).exec(text);
      return match ? Number(match[1]) : undefined;
    };
    const seq = number('seq') ?? position;
    const kind = /"kind":"([a-z-]+)"/.exec(text)?.[1];
    const round = number('round');
    const isRound = kind?.startsWith('round-') === true && round !== undefined;
    const about = [kind, isRound ? `round ${round}` : undefined].filter(Boolean).join(', ');
    const problem: VerificationProblem = {
      seq,
      code: 'LINE_DAMAGED',
      message: `line ${line.line} of the log (record ${seq}${about ? `, ${about}` : ''} by its text): ${line.damage ?? 'is not a record'}; the log was damaged or edited`,
    };
    if ((ROUND_RECORD_KINDS as readonly (string | undefined)[]).includes(kind))
      problem.kind = kind as RoundRecordKind;
    if (isRound) {
      problem.round = round;
      this.#roundReport(round, '').problems.push(problem);
    }
    this.#problems.push(problem);
    this.#expectedSeq = position + 1;
    this.#afterDamage = true;
    return problem;
  }

  report(): VerificationReport {
    const rounds = [...this.#rounds.values()].sort((a, b) => a.round - b.round);
    const report: VerificationReport = {
      ok: this.#problems.length === 0,
      records: this.#position,
      head: this.#head,
      rounds: rounds.map((r) => ({ ...r, ok: r.problems.length === 0 })),
      problems: [...this.#problems],
    };
    if (this.#problems.length > 0) report.firstFailure = this.#problems[0];
    return report;
  }

  #examine(value: unknown): Examination {
    const exam: Examination = { problems: [], aggregation: 'unchecked', missingBlobs: [] };
    const raw = (value ?? {}) as { seq?: unknown; kind?: unknown };
    const seq = Number.isSafeInteger(raw.seq) ? (raw.seq as number) : this.#position;
    let record: RoundRecord;
    try {
      record = parseRoundRecord(value, `record ${seq}`);
      // Also proves the record has a canonical encoding (no floats, no undefined, ...).
      canonicalJson(record);
    } catch (err) {
      if (!(err instanceof FeditError)) throw err;
      exam.problems.push({ seq, code: 'RECORD_SHAPE', message: err.message });
      return exam;
    }
    exam.record = record;
    const isRound = record.kind.startsWith('round-');
    const where = `record ${seq} (${record.kind}${isRound ? `, round ${record.round}` : ''})`;
    const problem = (code: VerificationProblemCode, message: string): void => {
      const p: VerificationProblem = { seq, kind: record.kind, code, message: `${where}: ${message}` };
      if (isRound) p.round = record.round;
      exam.problems.push(p);
    };

    this.#checkIntegrity(record, problem);
    this.#checkLifecycle(record, problem);
    const blobs = this.#options.blobs;
    if (blobs && record.kind === 'config' && record.body.globalAdapter !== undefined) {
      const loader = new BlobLoader(blobs, problem, exam);
      loader.load(record.body.globalAdapter, 'the global adapter');
    }
    if (record.kind === 'round-closed' && blobs) {
      this.#recompute(record, blobs, problem, exam);
    }
    return exam;
  }

  #checkIntegrity(
    record: RoundRecord,
    problem: (code: VerificationProblemCode, message: string) => void,
  ): void {
    if (this.#afterDamage) {
      // Already reported: the line before is not a record, so there is nothing to chain to.
    } else if (record.seq !== this.#expectedSeq) {
      problem(
        'SEQ_GAP',
        `has seq ${record.seq} where ${this.#expectedSeq} was expected; a record is missing, extra or moved`,
      );
    }
    if (!this.#afterDamage && record.prevHash !== this.#head) {
      problem(
        'CHAIN_BROKEN',
        this.#position === 0
          ? `is the first record but its prevHash is ${record.prevHash}, not the zero hash; records before it are missing`
          : `prevHash ${record.prevHash} is not the previous record's hash ${this.#head}; a record was removed, inserted or reordered`,
      );
    }
    const digest = roundRecordDigest(record);
    const computed = `sha256:${Buffer.from(digest).toString('hex')}`;
    if (computed !== record.hash) {
      problem(
        'RECORD_HASH',
        `its content hashes to ${computed}, not to its recorded hash ${record.hash}; it was changed after it was signed`,
      );
    }
    const key = this.#options.coordinatorPublicKey;
    if (key && !verifyRoundRecordSignature(record, key)) {
      problem('RECORD_SIGNATURE', "its signature is not the coordinator's signature over its content");
    }
    if (this.#federation !== undefined && record.federation !== this.#federation) {
      problem(
        'FEDERATION_MISMATCH',
        `belongs to federation ${JSON.stringify(record.federation)}, not ${JSON.stringify(this.#federation)}`,
      );
    }
    if (this.#lastTime !== undefined && record.time < this.#lastTime) {
      problem('TIME_BACKWARDS', `time ${record.time} is before the previous record's ${this.#lastTime}`);
    }
  }

  #checkLifecycle(
    record: RoundRecord,
    problem: (code: VerificationProblemCode, message: string) => void,
  ): void {
    if (this.#position === 0 && (record.kind !== 'config' || record.body.globalAdapter === undefined)) {
      problem(
        'FIRST_NOT_CONFIG',
        'the first record must be a config record naming the initial global adapter',
      );
    }
    const open = this.#open;
    switch (record.kind) {
      case 'config':
        if (record.body.globalAdapter !== undefined && open) {
          problem('ROUND_ORDER', `changes the global adapter while round ${open.round} is open`);
        }
        break;
      case 'enrol': {
        const { participant, publicKey } = record.body;
        const known = this.#participants.get(participant);
        if (known?.revoked)
          problem('REVOKED_PARTICIPANT', `enrols ${participant} again after its revocation`);
        else if (known) problem('ALREADY_ENROLLED', `enrols ${participant}, who is already enrolled`);
        // The coordinator refuses a key enrolled before (ENROL_KEY_IN_USE, or AUTH_REVOKED once
        // revoked): under a second id the same participant would be selected and counted twice.
        const holder = this.#participantByKey.get(enrolKey(publicKey));
        if (holder !== undefined && holder !== participant)
          problem(
            'KEY_ALREADY_ENROLLED',
            `enrols ${participant} with signing key ${publicKey}, which ${holder} enrolled with` +
              `${this.#participants.get(holder)?.revoked ? ' (revoked since)' : ''}: one key is one participant`,
          );
        const derived = fingerprintOf(publicKey, (record.body as { boxKey?: unknown }).boxKey);
        if (derived !== undefined && derived !== participant)
          problem(
            'PARTICIPANT_ID',
            `enrols ${participant}, but the keys it records are those of participant ${derived} (the fingerprint of the signing and box keys)`,
          );
        break;
      }
      case 'revoke': {
        const known = this.#participants.get(record.body.participant);
        if (!known) problem('NOT_ENROLLED', `revokes ${record.body.participant}, who was never enrolled`);
        else if (known.revoked)
          problem('REVOKED_PARTICIPANT', `revokes ${record.body.participant} a second time`);
        break;
      }
      case 'round-open':
        this.#checkOpen(record.round, record.body, problem);
        break;
      case 'round-closed':
        this.#checkClosed(record.round, record.body, problem);
        break;
      case 'round-aborted':
        if (open?.round !== record.round) {
          problem('ROUND_ORDER', `aborts round ${record.round}, which is not open`);
        }
        break;
    }
    if (!record.kind.startsWith('round-') && record.round !== this.#lastRound) {
      problem('ROUND_FIELD', `has round ${record.round}, but the last round opened is ${this.#lastRound}`);
    }
  }

  #checkOpen(
    round: number,
    body: RoundOpenBody,
    problem: (code: VerificationProblemCode, message: string) => void,
  ): void {
    if (this.#open) problem('ROUND_ORDER', `opens while round ${this.#open.round} is still open`);
    if (round !== this.#lastRound + 1) {
      problem('ROUND_ORDER', `opens round ${round}, but the next round is ${this.#lastRound + 1}`);
    }
    this.#checkRule(body.rule.name, body.rule.config, problem);
    if (body.globalAdapter !== this.#globalAdapter) {
      problem(
        'GLOBAL_MISMATCH',
        `trains from ${body.globalAdapter}, but the global adapter is ${this.#globalAdapter ?? 'not set'}`,
      );
    }
    const { seed, fraction, minimum, selected } = body.selection;
    if (selected.length === 0) problem('SELECTION_EMPTY', 'selects no participant');
    let expected: string[];
    try {
      expected = selectParticipants(seed, this.eligibleParticipants(), fraction, minimum);
    } catch (err) {
      if (!(err instanceof FeditError)) throw err;
      problem('SELECTION_MISMATCH', `its selection cannot be re-derived: ${err.message}`);
      return;
    }
    if (canonicalJson(expected) !== canonicalJson(selected)) {
      const extra = selected.filter((id) => !expected.includes(id));
      const missing = expected.filter((id) => !selected.includes(id));
      problem(
        'SELECTION_MISMATCH',
        `selects [${selected.join(', ')}], but seed ${JSON.stringify(seed)} selects [${expected.join(', ')}] from the eligible participants` +
          (extra.length > 0 ? `; not selected by the seed: ${extra.join(', ')}` : '') +
          (missing.length > 0 ? `; left out: ${missing.join(', ')}` : ''),
      );
    }
  }

  #checkClosed(
    round: number,
    body: RoundClosedBody,
    problem: (code: VerificationProblemCode, message: string) => void,
  ): void {
    const open = this.#open;
    if (open?.round !== round) {
      problem('ROUND_ORDER', `closes round ${round}, which is not open`);
    } else {
      if (canonicalJson(body.rule) !== canonicalJson(open.body.rule)) {
        problem(
          'OPEN_CLOSE_MISMATCH',
          `announces rule ${canonicalJson(body.rule)}, but the round opened with ${canonicalJson(open.body.rule)}`,
        );
      }
      if (canonicalJson(body.selection) !== canonicalJson(open.body.selection)) {
        problem('OPEN_CLOSE_MISMATCH', 'its selection differs from the one the round opened with');
      }
      if (body.globalAdapterIn !== open.body.globalAdapter) {
        problem(
          'GLOBAL_MISMATCH',
          `says the round trained from ${body.globalAdapterIn}, but it opened with ${open.body.globalAdapter}`,
        );
      }
    }
    this.#checkRule(body.rule.name, body.rule.config, problem);
    if (body.updates.length === 0)
      problem('NO_UPDATES', 'closes with no counted update; such a round is aborted');

    const selected = new Set(body.selection.selected);
    const counted = new Set<string>();
    const envelopes = new Set<string>();
    body.updates.forEach((update, i) => {
      const who = update.participant;
      const previous = body.updates[i - 1];
      if (counted.has(who)) problem('DUPLICATE_UPDATE', `counts an update of ${who} twice`);
      else if (previous && compareUtf8(previous.participant, who) > 0) {
        problem(
          'UPDATES_ORDER',
          `lists ${who} after ${previous.participant}; updates are listed in ascending participant order`,
        );
      }
      counted.add(who);
      const participant = this.#participants.get(who);
      if (!participant) problem('NOT_ENROLLED', `counts an update of ${who}, who is not enrolled`);
      else if (participant.revoked)
        problem('REVOKED_PARTICIPANT', `counts an update of ${who}, whose enrolment was revoked`);
      if (!selected.has(who))
        problem('NOT_SELECTED', `counts an update of ${who}, who was not selected for round ${round}`);
      if (this.#envelopes.has(update.envelopeDigest) || envelopes.has(update.envelopeDigest)) {
        problem(
          'REPLAYED_ENVELOPE',
          `counts envelope ${update.envelopeDigest} of ${who}, which was already counted: a replay`,
        );
      }
      envelopes.add(update.envelopeDigest);
      if (participant) this.#checkEnvelopeFields(round, body, update, participant.publicKey, problem);
    });
    for (const { participant } of body.dropped) {
      if (counted.has(participant))
        problem('DROPPED_AND_COUNTED', `lists ${participant} both as dropped and as counted`);
    }
  }

  /** What the recorded envelope says must be what the record says (the signature is checked with the blob). */
  #checkEnvelopeFields(
    round: number,
    body: RoundClosedBody,
    update: CountedUpdate,
    publicKey: string,
    problem: (code: VerificationProblemCode, message: string) => void,
  ): void {
    const e = update.envelope;
    const differences: string[] = [];
    if (e.participant !== publicKey)
      differences.push(`it is signed by key ${e.participant}, not the enrolled key ${publicKey}`);
    if (e.federation !== this.#federation)
      differences.push(`it is for federation ${JSON.stringify(e.federation)}`);
    if (e.round !== round) differences.push(`it is for round ${e.round}`);
    if (e.globalAdapterHash !== body.globalAdapterIn)
      differences.push(`it was trained from ${e.globalAdapterHash}, not the round's ${body.globalAdapterIn}`);
    if (e.exampleCount !== update.exampleCount)
      differences.push(`it claims ${e.exampleCount} examples, the record counts ${update.exampleCount}`);
    if (e.version !== 1) differences.push(`its version is ${e.version}, not 1`);
    for (const d of differences) problem('ENVELOPE', `the envelope of ${update.participant}: ${d}`);
  }

  #checkRule(
    name: string,
    config: RoundOpenBody['rule']['config'],
    problem: (code: VerificationProblemCode, message: string) => void,
  ): AggregationRule | undefined {
    try {
      const rule = aggregationRule(name);
      rule.checkConfig(config);
      return rule;
    } catch (err) {
      if (!(err instanceof AggregationError)) throw err;
      problem(err.code === 'AGGREGATION_UNKNOWN_RULE' ? 'UNKNOWN_RULE' : 'RULE_CONFIG', err.message);
      return undefined;
    }
  }

  /**
   * With the blob store: checks every blob the round names, verifies each counted update's
   * envelope against its stored tensors, and applies the announced rule to the stored updates in
   * the listed order, one blob at a time.
   */
  #recompute(
    record: RoundRecord & { kind: 'round-closed' },
    blobs: BlobLookup,
    problem: (code: VerificationProblemCode, message: string) => void,
    exam: Examination,
  ): void {
    const body = record.body;
    let rule: AggregationRule | undefined;
    try {
      rule = aggregationRule(body.rule.name);
      rule.checkConfig(body.rule.config);
    } catch {
      rule = undefined; // already reported; the blobs and envelopes are still checked
    }
    const failedBefore = exam.problems.length;
    const loader = new BlobLoader(blobs, problem, exam);
    const globalIn = loader.load(body.globalAdapterIn, 'the global adapter');
    loader.load(body.globalAdapterOut, 'the new global adapter');
    let schema: AdapterSchema | undefined = globalIn && adapterSchema(globalIn);
    let sums: ReturnType<AggregationRule['createAccumulator']> | undefined;
    let updatesUnusable = false;
    for (const update of [...body.updates].sort((a, b) => compareUtf8(a.participant, b.participant))) {
      const tensors = loader.load(update.updateHash, `the update of ${update.participant}`);
      if (!tensors) {
        updatesUnusable = true;
        continue;
      }
      const publicKey = this.#participants.get(update.participant)?.publicKey;
      if (publicKey !== undefined) {
        const refusal = checkRecordedEnvelope(update.envelope, tensors, {
          envelopeDigest: update.envelopeDigest,
          publicKeyHex: publicKey,
        });
        if (refusal !== undefined) problem('ENVELOPE', `the envelope of ${update.participant}: ${refusal}`);
      }
      schema ??= adapterSchema(tensors);
      if (!rule) continue;
      sums ??= rule.createAccumulator(schema, body.rule.config);
      const mismatch = [...schema].find(([name, shape]) => {
        const t = tensors.get(name);
        return t !== undefined && canonicalJson(t.shape) !== canonicalJson(shape);
      });
      if (mismatch) {
        const [name, shape] = mismatch;
        problem(
          'UPDATE_INVALID',
          `the update of ${update.participant}: tensor ${name} has shape [${tensors.get(name)!.shape.join(', ')}], the global adapter's is [${shape.join(', ')}]`,
        );
        continue;
      }
      try {
        sums.add(tensorValues(tensors), update.exampleCount);
      } catch (err) {
        if (!(err instanceof FeditError)) throw err;
        problem('UPDATE_INVALID', `the update of ${update.participant}: ${err.message}`);
      }
    }
    if (exam.problems.length > failedBefore || updatesUnusable) {
      exam.aggregation = 'failed';
      return;
    }
    if (!rule || !sums || !schema) return;
    const recomputed = hashTensors(tensorsFromValues(schema, sums.result()));
    if (recomputed !== body.globalAdapterOut) {
      problem(
        'AGGREGATION_MISMATCH',
        `rule ${body.rule.name} applied to the ${body.updates.length} stored updates gives ${recomputed}, not the recorded new global adapter ${body.globalAdapterOut}`,
      );
      exam.aggregation = 'failed';
      return;
    }
    exam.aggregation = 'verified';
  }

  #commit(value: unknown, exam: Examination): void {
    const position = this.#position++;
    this.#problems.push(...exam.problems);
    const record = exam.record;
    if (!record) {
      // Keep going past an unreadable record so later records are still judged on their own.
      const raw = (value ?? {}) as { seq?: unknown; hash?: unknown };
      this.#expectedSeq = (Number.isSafeInteger(raw.seq) ? (raw.seq as number) : position) + 1;
      if (typeof raw.hash === 'string') this.#head = raw.hash;
      return;
    }
    this.#expectedSeq = record.seq + 1;
    this.#head = record.hash;
    this.#afterDamage = false;
    this.#federation ??= record.federation;
    if (this.#lastTime === undefined || record.time > this.#lastTime) this.#lastTime = record.time;

    switch (record.kind) {
      case 'config':
        if (record.body.globalAdapter !== undefined) this.#globalAdapter = record.body.globalAdapter;
        break;
      case 'enrol':
        if (!this.#participants.has(record.body.participant)) {
          this.#participants.set(record.body.participant, {
            publicKey: record.body.publicKey,
            revoked: false,
          });
        }
        if (!this.#participantByKey.has(enrolKey(record.body.publicKey)))
          this.#participantByKey.set(enrolKey(record.body.publicKey), record.body.participant);
        break;
      case 'revoke': {
        const participant = this.#participants.get(record.body.participant);
        if (participant) participant.revoked = true;
        break;
      }
      case 'round-open':
        this.#lastRound = Math.max(this.#lastRound, record.round);
        this.#open = { round: record.round, body: record.body };
        this.#rounds.set(record.round, {
          round: record.round,
          status: 'open',
          rule: record.body.rule.name,
          selected: [...record.body.selection.selected],
          participants: [],
          aggregation: 'unchecked',
          missingBlobs: [],
          ok: true,
          problems: [],
        });
        break;
      case 'round-closed':
      case 'round-aborted': {
        if (this.#open?.round === record.round) this.#open = undefined;
        const closed = record.kind === 'round-closed' ? record.body : undefined;
        const report = this.#roundReport(record.round, closed?.rule.name ?? '');
        report.status = closed ? 'closed' : 'aborted';
        if (closed) {
          this.#globalAdapter = closed.globalAdapterOut;
          for (const update of closed.updates) this.#envelopes.add(update.envelopeDigest);
          report.participants = closed.updates.map((u) => u.participant);
          report.aggregation = exam.aggregation;
          report.missingBlobs = exam.missingBlobs;
        }
        break;
      }
    }
    if (record.kind.startsWith('round-')) this.#roundReport(record.round, '').problems.push(...exam.problems);
  }

  #roundReport(round: number, rule: string): RoundReport {
    let report = this.#rounds.get(round);
    if (!report) {
      report = {
        round,
        status: 'open',
        rule,
        selected: [],
        participants: [],
        aggregation: 'unchecked',
        missingBlobs: [],
        ok: true,
        problems: [],
      };
      this.#rounds.set(round, report);
    }
    return report;
  }
}

/** Reads blobs for one record: a missing, unreadable or misnamed blob is a problem naming its hash. */
class BlobLoader {
  readonly #seen = new Map<string, Map<string, Tensor> | undefined>();

  constructor(
    private readonly blobs: BlobLookup,
    private readonly problem: (code: VerificationProblemCode, message: string) => void,
    private readonly exam: Examination,
  ) {}

  load(hash: string, what: string): Map<string, Tensor> | undefined {
    if (this.#seen.has(hash)) return this.#seen.get(hash);
    const tensors = this.#read(hash, what);
    this.#seen.set(hash, tensors);
    return tensors;
  }

  #read(hash: string, what: string): Map<string, Tensor> | undefined {
    let tensors: TensorCollection | undefined;
    try {
      tensors = this.blobs(hash);
    } catch (err) {
      if (!(err instanceof FeditError)) throw err;
      this.problem('BLOB_CORRUPT', `${what} ${hash} cannot be read from the blob store: ${err.message}`);
      return undefined;
    }
    if (tensors === undefined) {
      this.exam.missingBlobs.push(hash);
      this.problem(
        'BLOB_MISSING',
        `${what} ${hash} is not in the blob store; without it this record cannot be checked`,
      );
      return undefined;
    }
    const map = tensors instanceof Map ? new Map(tensors) : new Map(Object.entries(tensors));
    let actual: string;
    try {
      actual = hashTensors(map);
    } catch (err) {
      if (!(err instanceof FeditError)) throw err;
      this.problem('BLOB_CORRUPT', `${what} stored under ${hash} is not a valid tensor set: ${err.message}`);
      return undefined;
    }
    if (actual !== hash) {
      this.problem(
        'BLOB_CORRUPT',
        `${what} stored under ${hash} hashes to ${actual}; the blob was changed or damaged`,
      );
      return undefined;
    }
    return map;
  }
}
