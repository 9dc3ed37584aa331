// The admission rules: what makes the coordinator count a participant's update, as pure functions.
//
// An update is admitted in two steps, at the two moments the coordinator learns something:
//
//   update:begin   admitEnvelope(context, envelope)   before a single chunk is stored: the signed
//                  envelope is this participant's, for this federation and the open round, which
//                  selected it; it trains from the round's global adapter, claims no more examples
//                  and bytes than the limits allow, announces exactly the global adapter's tensors,
//                  and is neither counted already (replay, duplicate) nor from a dropped participant.
//   update:commit  admitCommit(round, participant)     nothing counted or dropped since the begin;
//                  admitPayload(envelope, payload)     the assembled bytes are the signed payload
//                                                      (size, one SHA-256), a safetensors file in
//                                                      the canonical layout (names ascending, no
//                                                      metadata), whose tensors are...
//                  admitUpdateTensors(context, tensors) ...exactly the announced schema, finite,
//                                                      and within the norm bound of the global.
//
// Each returns a refusal { code, message, field } or the admitted value; none does I/O, touches a
// socket or the log. The coordinator (coordinator/src/server/uploads.ts) turns a refusal into its
// answer to the participant; an auditor can apply the same rules to a logged round, so the rules a
// round was run by and the rules it is checked by cannot drift apart. The codes and messages are
// the ones participants see on the wire (docs/protocol.md).

import { createHash } from 'node:crypto';
import type { SignedEnvelope, TensorSpec, UpdateEnvelope } from '../protocol/messages.ts';
import { updateNorm } from '../aggregation/norm.ts';
import { layoutSafetensors, parseSafetensors } from '../tensors/safetensors.ts';
import { tensorToF32, type Tensor } from '../tensors/tensor.ts';
import type { DroppedParticipant } from './record.ts';

export type AdmissionCode =
  | 'ROUND_CLOSED'
  | 'UPDATE_PARTICIPANT'
  | 'UPDATE_FEDERATION'
  | 'UPDATE_NOT_SELECTED'
  | 'UPDATE_STALE'
  | 'UPDATE_EXAMPLES'
  | 'UPDATE_TOO_LARGE'
  | 'UPDATE_REPLAY'
  | 'UPDATE_DUPLICATE'
  | 'UPDATE_DROPPED'
  | 'UPDATE_SCHEMA'
  | 'UPDATE_PAYLOAD'
  | 'UPDATE_FORMAT'
  | 'UPDATE_NOT_FINITE'
  | 'UPDATE_NORM';

/** Why an update is not admitted: a stable code, a message a person can act on, the field at fault. */
export interface Refusal {
  code: AdmissionCode;
  message: string;
  field: string;
}

export type Admission<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

const refuse = (code: AdmissionCode, message: string, field: string): { ok: false; refusal: Refusal } => ({
  ok: false,
  refusal: { code, message, field },
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

export interface EnvelopeContext<R extends RoundView = RoundView> {
  federation: string;
  /** The participant the connection authenticated as: its id and signing key (hex). */
  participant: { id: string; signKey: string };
  /** The open round, if any. */
  round: R | undefined;
  limits: { maxExampleCount: number; maxUploadBytes: number };
  /** Whether the log already counts the envelope with this id (in an earlier round). */
  envelopeLogged(id: string): boolean;
}

/**
 * The checks of update:begin, in the order a participant is told about them. `id` is the envelope's
 * id (envelopeId); the signature is checked before (verifyEnvelope), the rules take it as given.
 * Admitted: the round the envelope is for.
 */
export function admitEnvelope<R extends RoundView>(
  context: EnvelopeContext<R>,
  envelope: SignedEnvelope,
  id: string,
): Admission<R> {
  const { round, limits, participant } = context;
  if (Buffer.from(envelope.participant).toString('hex') !== participant.signKey)
    return refuse(
      'UPDATE_PARTICIPANT',
      'envelope.participant is not the key this connection authenticated with',
      'envelope.participant',
    );
  if (envelope.federation !== context.federation)
    return refuse(
      'UPDATE_FEDERATION',
      `envelope.federation is ${envelope.federation}, this is ${context.federation}`,
      'envelope.federation',
    );
  if (!round || envelope.round !== round.round)
    return refuse(
      'ROUND_CLOSED',
      `round ${envelope.round} is not open${round ? ` (round ${round.round} is)` : ''}`,
      'envelope.round',
    );
  if (!round.selected.has(participant.id))
    return refuse(
      'UPDATE_NOT_SELECTED',
      `this participant was not selected for round ${round.round}`,
      'envelope.round',
    );
  if (envelope.globalAdapterHash !== round.globalAdapter)
    return refuse(
      'UPDATE_STALE',
      'envelope.globalAdapterHash is not the adapter this round trains from',
      'envelope.globalAdapterHash',
    );
  if (envelope.exampleCount > limits.maxExampleCount)
    return refuse(
      'UPDATE_EXAMPLES',
      `envelope.exampleCount ${envelope.exampleCount} is above the federation's limit ${limits.maxExampleCount}`,
      'envelope.exampleCount',
    );
  if (envelope.payloadBytes > limits.maxUploadBytes)
    return refuse(
      'UPDATE_TOO_LARGE',
      `the update is ${envelope.payloadBytes} bytes, above the limit of ${limits.maxUploadBytes}`,
      'envelope.payloadBytes',
    );
  if (context.envelopeLogged(id) || [...round.counted.values()].some((u) => u.envelopeDigest === id))
    return refuse('UPDATE_REPLAY', 'this envelope was already counted', 'envelope');
  const standing = admitCommit(round, participant.id, 'envelope');
  if (!standing.ok) return standing;
  const schema = checkAnnouncedSchema(round.schema, envelope.tensorSchema);
  return schema ? { ok: false, refusal: schema } : { ok: true, value: round };
}

/**
 * A participant's standing in the round: not counted yet, not dropped. Checked at begin and again
 * at commit: commits run one at a time, and an upload begun while the participant's previous one
 * was being committed (then counted, or refused and dropped) must not count too. A dropped
 * participant stays out for the rest of the round: a later update would make the round-closed
 * record list it as both dropped and counted, which the log refuses to append.
 */
export function admitCommit<R extends RoundView>(
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

/** The announced tensors must be the global adapter's: same names (ascending) and shapes. */
function checkAnnouncedSchema(
  global: ReadonlyMap<string, readonly number[]>,
  announced: readonly TensorSpec[],
): Refusal | undefined {
  const field = 'envelope.tensorSchema';
  const names = announced.map((t) => t.name);
  const expected = [...global.keys()].sort();
  if (names.length !== expected.length || names.some((n, i) => n !== expected[i])) {
    const extra = names.find((n) => !global.has(n));
    return refuse(
      'UPDATE_SCHEMA',
      extra
        ? `${field} has ${extra}, which the global adapter does not`
        : `${field} lacks tensors of the global adapter`,
      field,
    ).refusal;
  }
  for (const t of announced) {
    const shape = global.get(t.name)!;
    if (t.shape.join(',') !== shape.join(','))
      return refuse(
        'UPDATE_SCHEMA',
        `${field}: ${t.name} has shape [${t.shape}], the global adapter's is [${shape}]`,
        field,
      ).refusal;
  }
  return undefined;
}

/**
 * The assembled plaintext of an upload against its signed envelope: its size and SHA-256 (the one
 * hash of the payload), then a safetensors file in the canonical layout. The blob store keeps the
 * canonical file of the tensors, and the audit checks the participant's signed payloadHash against
 * exactly that file (envelope-record.ts): any other layout is refused. Admitted: the tensors
 * (views into `payload`).
 */
export function admitPayload(
  envelope: Pick<UpdateEnvelope, 'payloadHash' | 'payloadBytes'>,
  payload: Uint8Array,
  source = 'update',
): Admission<Map<string, Tensor>> {
  if (
    payload.byteLength !== envelope.payloadBytes ||
    `sha256:${createHash('sha256').update(payload).digest('hex')}` !== envelope.payloadHash
  )
    return refuse('UPDATE_PAYLOAD', 'the assembled update does not match envelope.payloadHash', 'payload');
  let tensors: Map<string, Tensor>;
  try {
    tensors = parseSafetensors(payload, source).tensors;
  } catch (err) {
    return refuse(
      'UPDATE_FORMAT',
      `the update is not a valid safetensors file: ${(err as Error).message}`,
      'payload',
    );
  }
  if (!isCanonicalLayout(payload, tensors))
    return refuse(
      'UPDATE_FORMAT',
      'the update is not a canonical safetensors file (names ascending, no metadata)',
      'payload',
    );
  return { ok: true, value: tensors };
}

/**
 * Whether `payload` is byte for byte the canonical file of `tensors` (its own tensors), without
 * hashing or copying it again: the canonical header fixes every data offset, the tensors are read
 * from those offsets of `payload`, so equal headers and equal lengths mean equal files.
 */
function isCanonicalLayout(payload: Uint8Array, tensors: ReadonlyMap<string, Tensor>): boolean {
  let head: Uint8Array;
  let totalBytes: number;
  try {
    ({ head, totalBytes } = layoutSafetensors(tensors));
  } catch {
    return false; // tensors no canonical file can hold (e.g. a header too large once rewritten)
  }
  return (
    totalBytes === payload.byteLength && Buffer.compare(head, payload.subarray(0, head.byteLength)) === 0
  );
}

export interface TensorsContext {
  /** The tensors the update must hold, exactly: names, shapes and dtypes. */
  schema: readonly TensorSpec[];
  /** The global adapter the update moves from, as float32 values by name. */
  global: ReadonlyMap<string, Float32Array>;
  maxUpdateNorm: number;
}

/**
 * An update's tensors: exactly the schema, every value finite, and the L2 distance from the global
 * adapter within the federation's bound. Admitted: the values as float32, by name.
 */
export function admitUpdateTensors(
  context: TensorsContext,
  tensors: ReadonlyMap<string, Tensor>,
): Admission<Map<string, Float32Array>> {
  const values = new Map<string, Float32Array>();
  for (const spec of context.schema) {
    const t = tensors.get(spec.name);
    if (!t || t.shape.join(',') !== spec.shape.join(',') || t.dtype !== spec.dtype)
      return refuse('UPDATE_SCHEMA', `tensor ${spec.name} differs from the envelope's schema`, 'payload');
    const v = tensorToF32(t);
    const bad = firstNonFinite(v);
    if (bad >= 0)
      return refuse(
        'UPDATE_NOT_FINITE',
        `tensor ${spec.name} has a non-finite value at index ${bad}`,
        'payload',
      );
    values.set(spec.name, v);
  }
  if (tensors.size !== context.schema.length)
    return refuse('UPDATE_SCHEMA', 'the update has tensors the envelope does not announce', 'payload');
  const norm = updateNorm(values, context.global);
  if (!(norm <= context.maxUpdateNorm))
    return refuse(
      'UPDATE_NORM',
      `the update moves the adapter by ${norm.toFixed(3)} (L2), above the federation's bound ${context.maxUpdateNorm}`,
      'payload',
    );
  return { ok: true, value: values };
}

/** The index of the first NaN or infinity in `values`, or -1 (a plain loop: this is the hot path). */
function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}
