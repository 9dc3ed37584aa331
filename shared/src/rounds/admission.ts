// The admission rules: what makes the coordinator count a participant's update, as pure functions.
//
// An update is admitted in two steps, at the two moments the coordinator learns something:
//
//   update:begin   admitEnvelope(context, envelope)   before a single chunk is stored: the signed
//                  envelope is this participant's, for this federation and the open round, which
//                  selected it; it trains from the round's global adapter, claims no more examples
//                  and bytes than the limits allow, announces exactly the global adapter's tensors
//                  (at one lower LoRA rank for all, only under a rule that takes it: UPDATE_RANK),
//                  and is neither counted already (replay, duplicate) nor from a dropped participant.
//   update:commit  admitCommit(round, participant)     nothing counted or dropped since the begin;
//                  (admission-payload.ts:)
//                  admitPayload(envelope, payload)     the assembled bytes are the signed payload
//                                                      (size, one SHA-256), a safetensors file in
//                                                      the canonical layout (names ascending, no
//                                                      metadata), whose tensors are...
//                  admitUpdateTensors(context, tensors) ...exactly the announced schema, finite,
//                                                      and within the norm bound of the global.
//
// Each returns a refusal { code, message, field } or the admitted value; none does I/O, touches a
// socket or the log. The coordinator (coordinator/src/server/uploads.ts) turns a refusal into its
// answer to the participant; the verifier holds every update a round-closed record counts to the
// same rules (update-rules.ts: ENVELOPE_RULES on the recorded envelope, checkAnnouncedSchema,
// admitTensorValues and checkUpdateNorm on the stored tensors), so the rules a round was run by
// and the rules it is audited by cannot drift apart. The codes and messages are the ones
// participants see on the wire (docs/protocol.md) and auditors read in a report.

import type { SignedEnvelope, TensorSpec } from '../protocol/messages.ts';
import { AggregationError } from '../aggregation/aggregation-error.ts';
import { compareUtf8 } from '../aggregation/rule.ts';
import { lowerRankOf } from '../aggregation/update-rank.ts';
import type { DroppedParticipant } from './record.ts';

export type AdmissionCode =
  | 'ROUND_CLOSED'
  | 'UPDATE_PARTICIPANT'
  | 'UPDATE_FEDERATION'
  | 'UPDATE_NOT_SELECTED'
  | 'UPDATE_STALE'
  | 'UPDATE_EXAMPLES'
  | 'UPDATE_TOO_LARGE'
  | 'UPDATE_SIZE'
  | 'UPDATE_REPLAY'
  | 'UPDATE_DUPLICATE'
  | 'UPDATE_DROPPED'
  | 'UPDATE_SCHEMA'
  | 'UPDATE_PAYLOAD'
  | 'UPDATE_FORMAT'
  | 'UPDATE_NOT_FINITE'
  | 'UPDATE_NORM'
  /**
   * The update is of a LoRA rank below the federation's under a rule that takes only the
   * federation's rank, or its tensors are of different ranks (aggregation/update-rank.ts).
   */
  | 'UPDATE_RANK'
  /** FFA-LoRA: the update's lora_A is not the global adapter's (only lora_B trains). */
  | 'UPDATE_FROZEN'
  /** A secure round takes only a masked input (secagg/masked-input.ts), and nothing else with it. */
  | 'UPDATE_NOT_MASKED';

/** Why an update is not admitted: a stable code, a message a person can act on, the field at fault. */
export interface Refusal {
  code: AdmissionCode;
  message: string;
  field: string;
}

export type Admission<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

/** A refusal, for the rules of this file and admission-payload.ts. */
export const refusal = (code: AdmissionCode, message: string, field: string): Refusal => ({
  code,
  message,
  field,
});

export const refuse = (
  code: AdmissionCode,
  message: string,
  field: string,
): { ok: false; refusal: Refusal } => ({
  ok: false,
  refusal: refusal(code, message, field),
});

/** What the rules need to know of the open round. */
export interface RoundView {
  round: number;
  /** Participant ids the round's selection chose. */
  selected: ReadonlySet<string>;
  /** The global adapter the round trains from. */
  globalAdapter: string;
  /** Shape of every tensor of the global adapter, by name. */
  schema: ReadonlyMap<string, readonly number[]>;
  /** The updates counted so far, by participant id. */
  counted: ReadonlyMap<string, { envelopeDigest: string }>;
  dropped: readonly DroppedParticipant[];
}

/** What a participant's standing in a round depends on (admitCommit). */
export type Standing = Pick<RoundView, 'round' | 'counted' | 'dropped'>;

export interface EnvelopeContext<R extends RoundView = RoundView> {
  federation: string;
  /** The participant the connection authenticated as: its id and signing key (hex). */
  participant: { id: string; signKey: string };
  /** The open round, if any. */
  round: R | undefined;
  limits: EnvelopeLimits;
  /** Whether the log already counts the envelope with this id (in an earlier round). */
  envelopeLogged(id: string): boolean;
  /**
   * The federation's aggregation rule: one that takes lower ranks (ruleTakesLowerRanks) admits
   * updates of a LoRA rank r_k below the global adapter's. Absent: only the global shapes.
   */
  rule?: string;
}

/** The federation's limits an envelope's claims are held to (FederationConfig['limits']). */
export interface EnvelopeLimits {
  maxExampleCount: number;
  maxUploadBytes: number;
}

/**
 * What an envelope claims, in the form both the signed envelope (update:begin) and its copy in a
 * round-closed record (envelope-record.ts) give it: so that the coordinator and the verifier hold
 * it to the same rules, ENVELOPE_RULES.
 */
export interface EnvelopeClaims {
  /** Hex of the Ed25519 key that signed it. */
  participant: string;
  federation: string;
  round: number;
  globalAdapterHash: string;
  exampleCount: number;
  payloadBytes: number;
  /** Its id, the digest the log counts it under (envelopeId). */
  id: string;
}

/** What an envelope is held to: whose it must be, for which federation and round, within which limits. */
export interface EnvelopeTerms {
  federation: string | undefined;
  /** The signing key (hex) of the participant the update is from. */
  signKey: string;
  /**
   * The round the update is for: the open one (the coordinator) or the one a record closes (the
   * verifier); whether the participant is among those it selected. None: no round is open.
   */
  round: { round: number; globalAdapter: string; selected: boolean } | undefined;
  /** The federation's limits; undefined where they are unknown (a log that records no config). */
  limits: EnvelopeLimits | undefined;
  /** Whether an envelope with this id was counted already: in the log, or earlier in the round. */
  counted(id: string): boolean;
}

type EnvelopeRule = (claims: EnvelopeClaims, terms: EnvelopeTerms) => Refusal | undefined;

/**
 * The rules an envelope's claims meet, one per refusal, in the order a participant is told about
 * them: an upload is refused by the first one broken (admitEnvelope); the verifier reports every
 * one a counted update's recorded envelope breaks (update-rules.ts).
 */
export const ENVELOPE_RULES: readonly EnvelopeRule[] = [
  (c, t) =>
    c.participant === t.signKey
      ? undefined
      : refusal(
          'UPDATE_PARTICIPANT',
          `envelope.participant ${c.participant} is not this participant's signing key ${t.signKey}`,
          'envelope.participant',
        ),
  (c, t) =>
    c.federation === t.federation
      ? undefined
      : refusal(
          'UPDATE_FEDERATION',
          `envelope.federation is ${c.federation}, this is ${t.federation}`,
          'envelope.federation',
        ),
  (c, t) =>
    t.round && c.round === t.round.round
      ? undefined
      : refusal(
          'ROUND_CLOSED',
          `round ${c.round} is not open${t.round ? ` (round ${t.round.round} is)` : ''}`,
          'envelope.round',
        ),
  (_, t) =>
    !t.round || t.round.selected
      ? undefined
      : refusal(
          'UPDATE_NOT_SELECTED',
          `this participant was not selected for round ${t.round.round}`,
          'envelope.round',
        ),
  (c, t) =>
    !t.round || c.globalAdapterHash === t.round.globalAdapter
      ? undefined
      : refusal(
          'UPDATE_STALE',
          'envelope.globalAdapterHash is not the adapter this round trains from',
          'envelope.globalAdapterHash',
        ),
  (c, t) =>
    !t.limits || c.exampleCount <= t.limits.maxExampleCount
      ? undefined
      : refusal(
          'UPDATE_EXAMPLES',
          `envelope.exampleCount ${c.exampleCount} is above the federation's limit ${t.limits.maxExampleCount}`,
          'envelope.exampleCount',
        ),
  (c, t) =>
    !t.limits || c.payloadBytes <= t.limits.maxUploadBytes
      ? undefined
      : refusal(
          'UPDATE_TOO_LARGE',
          `the update is ${c.payloadBytes} bytes, above the limit of ${t.limits.maxUploadBytes}`,
          'envelope.payloadBytes',
        ),
  (c, t) =>
    t.counted(c.id) ? refusal('UPDATE_REPLAY', 'this envelope was already counted', 'envelope') : undefined,
];

/** Every rule of ENVELOPE_RULES the claims break, in order. */
export function envelopeRefusals(claims: EnvelopeClaims, terms: EnvelopeTerms): Refusal[] {
  return ENVELOPE_RULES.map((rule) => rule(claims, terms)).filter((r): r is Refusal => r !== undefined);
}

/**
 * The checks of update:begin, in the order a participant is told about them: ENVELOPE_RULES, the
 * participant's standing in the round (admitCommit), the announced tensors (checkAnnouncedSchema).
 * `id` is the envelope's id (envelopeId); the signature is checked before (verifyEnvelope), the
 * rules take it as given. Admitted: the round the envelope is for.
 */
export function admitEnvelope<R extends RoundView>(
  context: EnvelopeContext<R>,
  envelope: SignedEnvelope,
  id: string,
): Admission<R> {
  const { round, participant } = context;
  const claims: EnvelopeClaims = {
    participant: Buffer.from(envelope.participant).toString('hex'),
    federation: envelope.federation,
    round: envelope.round,
    globalAdapterHash: envelope.globalAdapterHash,
    exampleCount: envelope.exampleCount,
    payloadBytes: envelope.payloadBytes,
    id,
  };
  const terms: EnvelopeTerms = {
    federation: context.federation,
    signKey: participant.signKey,
    round: round && {
      round: round.round,
      globalAdapter: round.globalAdapter,
      selected: round.selected.has(participant.id),
    },
    limits: context.limits,
    counted: (envelopeId) =>
      context.envelopeLogged(envelopeId) ||
      [...(round?.counted.values() ?? [])].some((u) => u.envelopeDigest === envelopeId),
  };
  for (const rule of ENVELOPE_RULES) {
    const broken = rule(claims, terms);
    if (broken) return { ok: false, refusal: broken };
  }
  const open = round!; // the round rule passed, so a round is open
  const standing = admitCommit(open, participant.id, 'envelope');
  if (!standing.ok) return standing;
  const schema = checkAnnouncedSchema(open.schema, envelope.tensorSchema, context.rule);
  return schema ? { ok: false, refusal: schema } : { ok: true, value: open };
}

/**
 * A participant's standing in the round: not counted yet, not dropped. Checked at begin and again
 * at commit: commits run one at a time, and an upload begun while the participant's previous one
 * was being committed (then counted, or refused and dropped) must not count too. A dropped
 * participant stays out for the rest of the round: a later update would make the round-closed
 * record list it as both dropped and counted, which the log refuses to append.
 */
export function admitCommit<R extends Standing>(
  round: R,
  participant: string,
  field = 'payload.uploadId',
): Admission<R> {
  const dropped = round.dropped.find((d) => d.participant === participant);
  if (dropped)
    return refuse(
      'UPDATE_DROPPED',
      `this participant's update was refused in round ${round.round} (${dropped.reason}); it can take part again from the next round`,
      field,
    );
  if (round.counted.has(participant))
    return refuse(
      'UPDATE_DUPLICATE',
      `an update of this participant is already counted in round ${round.round}`,
      field,
    );
  return { ok: true, value: round };
}

/**
 * The announced tensors must be the global adapter's: same names (ascending by UTF-8 bytes, the
 * order envelopes list them in) and shapes, or, when `rule` takes lower ranks, the shapes of one
 * LoRA rank r_k <= r for every tensor (lowerRankOf). Undefined when they are.
 */
export function checkAnnouncedSchema(
  global: ReadonlyMap<string, readonly number[]>,
  announced: readonly TensorSpec[],
  rule?: string,
): Refusal | undefined {
  const field = 'envelope.tensorSchema';
  const names = announced.map((t) => t.name);
  const expected = [...global.keys()].sort(compareUtf8);
  if (names.length !== expected.length || names.some((n, i) => n !== expected[i])) {
    const extra = names.find((n) => !global.has(n));
    return refusal(
      'UPDATE_SCHEMA',
      extra
        ? `${field} has ${extra}, which the global adapter does not`
        : `${field} lacks tensors of the global adapter`,
      field,
    );
  }
  try {
    lowerRankOf(global, new Map(announced.map((t) => [t.name, t.shape])), rule);
  } catch (err) {
    if (!(err instanceof AggregationError)) throw err;
    return refusal(
      err.code === 'AGGREGATION_RANK' ? 'UPDATE_RANK' : 'UPDATE_SCHEMA',
      `${field}: ${err.message}`,
      field,
    );
  }
  return undefined;
}
