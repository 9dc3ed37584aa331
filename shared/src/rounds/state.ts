// A federation's state as its round log says it is: the fold of the records, applied one by one.
// One fold for everyone who reads a log: the log writer (RoundLog.state, which the coordinator
// queries to run rounds), the verifier (checker.ts judges each record against the state before
// it), and the coordinator's index (a projection of this state). A record is applied as written,
// without judging it: the verifier says what is wrong with a record before it is applied, and the
// coordinator never appends a record the verifier refuses.
//
//   config        from here on, the global adapter it names (if it names one), and the federation
//                 config it holds (if it holds a readable one: recordedConfig); the first one's
//                 seed chain commitment (seed-chain.ts), if it carries one
//   enrol         a participant, its keys and display name, enrolled at the record's time
//   rename        the participant's display name from here on; the request's nonce is seen
//   revoke        the participant revoked, for good (the first revocation stands)
//   round-open    round r open, with its rule, selection, quorum, training round and global
//                 adapter; the last round is r; one more value of the seed chain revealed
//   round-closed  round r closed with its counted updates; their envelopes are seen; the global
//                 adapter is the round's output; one more round aggregated (what `rounds` counts)
//   round-aborted round r aborted, the global adapter unchanged
//   secagg-*      a secure round's phase record, kept with the open round (the first of each kind);
//                 a secure round-closed counts its survivors and sees their masked inputs' envelopes
//   finished      the federation is over: its rounds, final adapter and the record's seq
//   every record  seq and head advance past it; the time is the latest seen

import { compareUtf8 } from '../aggregation/rule.ts';
import { validateFederationConfig, type FederationConfig } from '../federation/config.ts';
import { PrivacyAccountant } from '../privacy/accountant.ts';
import { dpOf, newAccountant, withRound } from './privacy.ts';
import { seedChainWalk } from './seed-chain.ts';
import {
  ZERO_HASH,
  countedParticipants,
  type ConfigBody,
  type RoundOpenBody,
  type RoundRecord,
  type SecaggKeysBody,
  type SecaggSharesBody,
  type SecaggUnmaskBody,
  type SecaggConsistencyBody,
} from './record.ts';

export interface ParticipantState {
  /** The Ed25519 signing key it enrolled with, as the enrol record writes it. */
  publicKey: string;
  /** Its X25519 box key and display name, when the enrol record carries them. */
  boxKey?: string;
  displayName?: string;
  enrolledAt: string;
  revoked?: { at: string; reason: string };
}

export interface RoundState {
  round: number;
  status: 'open' | 'closed' | 'aborted';
  /** The aggregation rule's name ('' for a round whose close or abort is all the log shows). */
  rule: string;
  selected: string[];
  /** Participants eligible (enrolled, not revoked) when the round opened: SCAFFOLD's N. */
  eligible?: number;
  /** The candidates the selection drew from (the ready participants), when the record names them. */
  ready?: string[];
  /** Updates at which the round closes, when the record names it. */
  quorum?: number;
  /** The round-open record's commitment to its DP noise seed, when it has one. */
  noiseCommitment?: string;
  /**
   * The round's place in the training schedule (1 + rounds aggregated before it): the round
   * number in logs written before aborted rounds stopped counting.
   */
  trainingRound: number;
  /** Participants whose updates were counted (closed rounds), in the listed order. */
  counted: string[];
  globalAdapterIn?: string;
  globalAdapterOut?: string;
  /** Why the round was aborted. */
  reason?: string;
  metrics?: Record<string, string | number>;
  openedAt?: string;
  closedAt?: string;
  /** The round-open record's hash (a secure round's graph seed comes from it). */
  openHash?: string;
  /** A secure round's phase records so far (secagg/round/). */
  secagg?: {
    keys?: SecaggKeysBody;
    shares?: SecaggSharesBody;
    unmask?: SecaggUnmaskBody;
    /** The secagg-unmask record's hash: what the consistency signatures sign. */
    unmaskHash?: string;
    consistency?: SecaggConsistencyBody;
  };
}

/** Where the log stands on its seed chain (seed-chain.ts). */
export interface SeedChainState {
  commitment: string;
  length: number;
  /** Round-open records since the commitment: the next one reveals v_(revealed + 1). */
  revealed: number;
  /** The latest value known to be on the chain and its index (the commitment, v_0, at first). */
  last: { index: number; value: string };
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;

/** A signing key as enrolments are compared: hex in either case is the same key. */
export const enrolKey = (publicKey: string) =>
  HEX_KEY.test(publicKey) ? publicKey.toLowerCase() : publicKey;

export class FederationState {
  #nextSeq = 0;
  #head = ZERO_HASH;
  #federation: string | undefined;
  #lastTime: string | undefined;
  #lastRound = 0;
  #aggregatedRounds = 0;
  #lastAggregated: { round: number; updates: number } | undefined;
  #open: { round: number; body: RoundOpenBody } | undefined;
  #globalAdapter: string | undefined;
  #serverState: string | undefined;
  #config: FederationConfig | undefined;
  #finished: { seq: number; rounds: number; globalAdapter: string; reason?: string } | undefined;
  /** With differential privacy: the accountant over the rounds closed so far (privacy.ts). */
  #accountant: PrivacyAccountant | undefined;
  #seedChain: SeedChainState | undefined;
  readonly #participants = new Map<string, ParticipantState>();
  /** Participant id by enrolled signing key (enrolKey form). */
  readonly #participantByKey = new Map<string, string>();
  readonly #envelopes = new Set<string>();
  /** The nonces of the rename records (hex), so a replayed rename is recognised. */
  readonly #renameNonces = new Set<string>();
  readonly #rounds = new Map<number, RoundState>();

  /** `federation`: the federation the log must belong to, when known before its first record. */
  constructor(federation?: string) {
    this.#federation = federation;
  }

  /** seq of the next record. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Hash of the last record applied (ZERO_HASH when none). */
  get head(): string {
    return this.#head;
  }

  get federation(): string | undefined {
    return this.#federation;
  }

  /** The latest time of the records applied. */
  get lastTime(): string | undefined {
    return this.#lastTime;
  }

  /** Number of the last round opened (0 before the first). */
  get lastRound(): number {
    return this.#lastRound;
  }

  /** Rounds closed with an aggregate (aborted ones do not count): what the config's `rounds` counts. */
  get aggregatedRounds(): number {
    return this.#aggregatedRounds;
  }

  /** The finished record, once the log has one: the federation is over. */
  get finished(): { seq: number; rounds: number; globalAdapter: string; reason?: string } | undefined {
    return this.#finished;
  }

  /** The last round closed with an aggregate, and how many updates it counted. */
  get lastAggregated(): { round: number; updates: number } | undefined {
    return this.#lastAggregated;
  }

  /** The round open now, if any, with its open record's body. */
  get openRound(): { round: number; body: RoundOpenBody } | undefined {
    return this.#open;
  }

  /** The current global adapter's hash. */
  /** The server optimizer's state the last closed round left (a blob hash), if any round kept one. */
  get serverState(): string | undefined {
    return this.#serverState;
  }

  get globalAdapter(): string | undefined {
    return this.#globalAdapter;
  }

  /** The federation config the log records (its last config record holding a readable one). */
  /** The privacy accountant the log gives, with differential privacy (a copy to read or extend). */
  get privacyAccountant(): PrivacyAccountant | undefined {
    return this.#accountant && PrivacyAccountant.fromState(this.#accountant.toState());
  }

  get config(): FederationConfig | undefined {
    return this.#config;
  }

  /** The seed chain the first config record committed to, and how far the log has walked it. */
  get seedChain(): Readonly<SeedChainState> | undefined {
    return this.#seedChain;
  }

  /** Participants enrolled and not revoked, in canonical order: whom a round may select. */
  eligibleParticipants(): string[] {
    return [...this.#participants]
      .filter(([, p]) => !p.revoked)
      .map(([id]) => id)
      .sort(compareUtf8);
  }

  /** An enrolled (possibly revoked) participant. */
  participant(id: string): Readonly<ParticipantState> | undefined {
    return this.#participants.get(id);
  }

  /** Every participant ever enrolled, in enrolment order. */
  participants(): ReadonlyMap<string, Readonly<ParticipantState>> {
    return this.#participants;
  }

  /** The public key an enrolled (possibly revoked) participant enrolled with. */
  participantKey(participant: string): string | undefined {
    return this.#participants.get(participant)?.publicKey;
  }

  /** The participant that enrolled with signing key `publicKey`, revoked or not. */
  participantWithKey(publicKey: string): string | undefined {
    return this.#participantByKey.get(enrolKey(publicKey));
  }

  isRevoked(participant: string): boolean {
    return this.#participants.get(participant)?.revoked !== undefined;
  }

  /** Whether a rename record already carried this nonce (hex): a second one is a replay. */
  hasRenameNonce(nonce: string): boolean {
    return this.#renameNonces.has(nonce);
  }

  /** Whether an update with this envelope digest was already counted. */
  hasEnvelope(digest: string): boolean {
    return this.#envelopes.has(digest);
  }

  /** The rounds the log shows, by number. */
  rounds(): ReadonlyMap<number, Readonly<RoundState>> {
    return this.#rounds;
  }

  /** Applies the next record of the log. */
  apply(record: RoundRecord): void {
    this.#nextSeq = record.seq + 1;
    this.#head = record.hash;
    this.#federation ??= record.federation;
    if (this.#lastTime === undefined || record.time > this.#lastTime) this.#lastTime = record.time;
    switch (record.kind) {
      case 'config':
        if (record.body.globalAdapter !== undefined) this.#globalAdapter = record.body.globalAdapter;
        this.#config = recordedConfig(record.body) ?? this.#config;
        if (this.#config?.differentialPrivacy && !this.#accountant)
          this.#accountant = newAccountant(this.#config.differentialPrivacy);
        if (record.seq === 0 && record.body.seedChain) {
          const { commitment, length } = record.body.seedChain;
          this.#seedChain = { commitment, length, revealed: 0, last: { index: 0, value: commitment } };
        }
        break;
      case 'enrol': {
        const { participant, publicKey, boxKey, displayName } = record.body;
        if (!this.#participants.has(participant)) {
          this.#participants.set(participant, {
            publicKey,
            ...(boxKey !== undefined && { boxKey }),
            ...(displayName !== undefined && { displayName }),
            enrolledAt: record.time,
          });
        }
        if (!this.#participantByKey.has(enrolKey(publicKey)))
          this.#participantByKey.set(enrolKey(publicKey), participant);
        break;
      }
      case 'rename': {
        const participant = this.#participants.get(record.body.participant);
        if (participant) participant.displayName = record.body.displayName;
        this.#renameNonces.add(record.body.nonce);
        break;
      }
      case 'revoke': {
        const participant = this.#participants.get(record.body.participant);
        if (participant && !participant.revoked)
          participant.revoked = { at: record.time, reason: record.body.reason };
        break;
      }
      case 'round-open':
        this.#applyOpen(record);
        break;
      case 'round-closed':
      case 'round-aborted':
        this.#applyEnd(record);
        break;
      case 'finished':
        this.#finished ??= { seq: record.seq, ...record.body };
        break;
      case 'secagg-keys':
      case 'secagg-shares':
      case 'secagg-unmask':
      case 'secagg-consistency':
        this.#applySecagg(record);
        break;
    }
  }

  /**
   * Passes over a record that cannot be read (an auditor's log with a damaged line), so the
   * records after it are still judged on their own: the next seq is `nextSeq`, and the head the
   * record's hash when its text names one.
   */
  skip(nextSeq: number, hash?: string): void {
    this.#nextSeq = nextSeq;
    if (hash !== undefined) this.#head = hash;
  }

  /** A secure round's phase record: kept on the open round it belongs to (the first of each kind). */
  #applySecagg(
    record: RoundRecord & { kind: 'secagg-keys' | 'secagg-shares' | 'secagg-unmask' | 'secagg-consistency' },
  ): void {
    const round = this.#open && this.#rounds.get(this.#open.round);
    if (!round) return;
    const phases = (round.secagg ??= {});
    if (record.kind === 'secagg-keys') phases.keys ??= record.body;
    else if (record.kind === 'secagg-shares') phases.shares ??= record.body;
    else if (record.kind === 'secagg-unmask') {
      phases.unmask ??= record.body;
      phases.unmaskHash ??= record.hash;
    } else phases.consistency ??= record.body;
  }

  #applyOpen(record: RoundRecord & { kind: 'round-open' }): void {
    this.#lastRound = Math.max(this.#lastRound, record.round);
    this.#open = { round: record.round, body: record.body };
    const chain = this.#seedChain;
    if (chain) {
      chain.revealed++;
      // A missing or unreadable reveal is reported by the rules; the next one is checked against
      // the last value known to be on the chain, so one bad record does not condemn the rest.
      const { reveal } = record.body.selection;
      if (
        reveal !== undefined &&
        chain.revealed <= chain.length &&
        seedChainWalk(reveal, chain.revealed - chain.last.index) === chain.last.value
      )
        chain.last = { index: chain.revealed, value: reveal };
    }
    this.#rounds.set(record.round, {
      round: record.round,
      status: 'open',
      rule: record.body.rule.name,
      selected: [...record.body.selection.selected],
      eligible: this.eligibleParticipants().length,
      ...(record.body.selection.ready !== undefined && { ready: [...record.body.selection.ready] }),
      ...(record.body.quorum !== undefined && { quorum: record.body.quorum }),
      ...(record.body.noiseCommitment !== undefined && { noiseCommitment: record.body.noiseCommitment }),
      trainingRound: record.body.trainingRound ?? record.round,
      counted: [],
      globalAdapterIn: record.body.globalAdapter,
      openedAt: record.time,
      openHash: record.hash,
    });
  }

  /** Adds a closed round to the accountant (a count the log makes impossible is left to the rules). */
  #account(round: RoundState): void {
    const setting = dpOf(this.#config);
    if (!setting || !this.#accountant || round.eligible === undefined) return;
    try {
      this.#accountant = withRound(this.#accountant, setting.dp, {
        selected: round.selected.length,
        eligible: round.eligible,
      });
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
    }
  }

  #applyEnd(record: RoundRecord & { kind: 'round-closed' | 'round-aborted' }): void {
    if (this.#open?.round === record.round) this.#open = undefined;
    let round = this.#rounds.get(record.round);
    if (!round) {
      // A close or abort of a round the log never opened (only a log that fails verification).
      round = {
        round: record.round,
        status: 'open',
        rule: '',
        selected: [],
        counted: [],
        trainingRound: record.round,
      };
      this.#rounds.set(record.round, round);
    }
    round.closedAt = record.time;
    if (record.kind === 'round-aborted') {
      round.status = 'aborted';
      round.reason = record.body.reason;
      return;
    }
    const body = record.body;
    round.status = 'closed';
    round.rule ||= body.rule.name;
    round.counted = countedParticipants(body);
    round.globalAdapterIn ??= body.globalAdapterIn;
    round.globalAdapterOut = body.globalAdapterOut;
    round.metrics = body.metrics;
    this.#globalAdapter = body.globalAdapterOut;
    this.#aggregatedRounds++;
    this.#lastAggregated = { round: record.round, updates: round.counted.length };
    if (body.serverStateOut !== undefined) this.#serverState = body.serverStateOut;
    this.#account(round);
    for (const update of body.updates) this.#envelopes.add(update.envelopeDigest);
    for (const masked of body.secure?.maskedInputs ?? []) this.#envelopes.add(masked.envelopeDigest);
  }
}

/**
 * The federation config a config record holds as the coordinator writes it at init
 * (`settings.config`: the config's JSON text), parsed; undefined when it holds none, or none that
 * parses (logs written by tests or by hand): the rules that need the config's limits then go
 * unchecked rather than guess them (and the lifecycle rules report a config that does not parse).
 */
export function recordedConfig(body: ConfigBody): FederationConfig | undefined {
  return readRecordedConfig(body).config;
}

/** recordedConfig, with why it is absent: no config at all, or one that does not parse. */
export function readRecordedConfig(body: ConfigBody): { config?: FederationConfig; problem?: string } {
  const text = body.settings.config;
  if (text === undefined) return {};
  try {
    if (typeof text !== 'string') throw new Error("settings.config is not the config's JSON text");
    return { config: validateFederationConfig(JSON.parse(text)) };
  } catch (err) {
    return { problem: (err as Error).message };
  }
}
