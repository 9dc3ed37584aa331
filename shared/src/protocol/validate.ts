// The validators of every payload that crosses the wire, made from the declarations in
// messages.ts: each checks types, exact byte lengths, integer ranges and string forms, refuses
// fields the protocol does not define, and returns a fresh object holding only the protocol's
// fields. A failure throws ProtocolError whose `field` is the path of the value at fault
// ('envelope.tensorSchema[3].shape[1]') and whose message starts with that path. The coordinator
// validates every client payload before it touches any state; the client validates what the
// coordinator sends the same way.
import { sha256 } from '../crypto/digest.ts';
import { SEAL_OVERHEAD_BYTES } from '../crypto/seal.ts';
import { FeditError } from '../errors.ts';
import { SchemaError, literal, object, union, type Schema } from '../schema/schema.ts';
import { ProtocolError } from './errors.ts';
import { MAX_ERROR_MESSAGE_LENGTH, chunkPlaintextBytes } from './limits.ts';
import {
  CLIENT_MESSAGES,
  SERVER_MESSAGES,
  adapterGet,
  authHello,
  authProve,
  enrolRequest,
  federationInfoRequest,
  roundClosed,
  roundOpen,
  signedEnvelope,
  updateBegin,
  updateChunk,
  updateCommit,
  updateEnvelope,
  wireError,
  type AckResult,
  type ClientEventName,
  type ClientPayload,
  type ClientToServerEvents,
  type ServerEventName,
  type ServerPayload,
  type UpdateChunk,
  type UpdateEnvelope,
  type WireError,
} from './messages.ts';

/** A validator of `schema` that reports failures as ProtocolError (PROTOCOL_MISSING, ...). */
export function protocolValidator<T>(schema: Schema<T>, defaultField = 'payload') {
  return (value: unknown, field = defaultField): T => {
    try {
      return schema.parse(value, field);
    } catch (error) {
      if (error instanceof SchemaError) {
        throw new ProtocolError(`PROTOCOL_${error.kind}`, error.field, error.message);
      }
      throw error;
    }
  };
}

// ---- client → server ---------------------------------------------------------------------------

export const validateAuthProve = protocolValidator(authProve);
export const validateEnrolRequest = protocolValidator(enrolRequest);
export const validateFederationInfoRequest = protocolValidator(federationInfoRequest);
export const validateAdapterGet = protocolValidator(adapterGet);
export const validateUpdateBegin = protocolValidator(updateBegin);
export const validateUpdateChunk = protocolValidator(updateChunk);
export const validateUpdateCommit = protocolValidator(updateCommit);
/** Validates a signed envelope's structure (not its signature: see verifyEnvelope). */
export const validateEnvelope = protocolValidator(signedEnvelope, 'envelope');
/** Validates an envelope before it is signed (no `signature` field allowed). */
export const validateUnsignedEnvelope = protocolValidator(updateEnvelope, 'envelope');

/** The fields of an update envelope (without its signature), in the order they are declared. */
export const ENVELOPE_FIELDS = Object.keys(updateEnvelope.shape) as readonly (keyof UpdateEnvelope)[];

/** The validator of each client-to-server event's payload. */
export const CLIENT_PAYLOAD_VALIDATORS = Object.fromEntries(
  Object.entries(CLIENT_MESSAGES).map(([event, { payload }]) => [event, protocolValidator<object>(payload)]),
) as { [E in ClientEventName]: (payload: unknown) => ClientPayload<E> };

/** Validates `payload` as the payload of client event `event`; unknown events are refused. */
export function validateClientPayload<E extends ClientEventName>(
  event: E,
  payload: unknown,
): ClientPayload<E> {
  if (!Object.hasOwn(CLIENT_PAYLOAD_VALIDATORS, event)) throw unknownEvent(event);
  return CLIENT_PAYLOAD_VALIDATORS[event](payload);
}

/**
 * Checks a (validated) chunk against the envelope of its upload: the index is below chunkCount,
 * the sealed length is exactly that chunk's plaintext length + 16, and `sha256` matches the bytes.
 */
export function checkChunkAgainstEnvelope(
  envelope: UpdateEnvelope,
  chunk: UpdateChunk,
  field = 'payload',
): void {
  if (chunk.index >= envelope.chunkCount) {
    throw new ProtocolError(
      'PROTOCOL_RANGE',
      `${field}.index`,
      `${field}.index is ${chunk.index}, but the upload has ${envelope.chunkCount} chunks (0 .. ${envelope.chunkCount - 1})`,
    );
  }
  const expected =
    chunkPlaintextBytes(envelope.payloadBytes, envelope.chunkBytes, chunk.index) + SEAL_OVERHEAD_BYTES;
  if (chunk.data.byteLength !== expected) {
    throw new ProtocolError(
      'PROTOCOL_INCONSISTENT',
      `${field}.data`,
      `${field}.data is ${chunk.data.byteLength} bytes, but sealed chunk ${chunk.index} of this upload must be ${expected}`,
    );
  }
  if (Buffer.compare(sha256(chunk.data), chunk.sha256) !== 0) {
    throw new ProtocolError(
      'PROTOCOL_INCONSISTENT',
      `${field}.sha256`,
      `${field}.sha256 does not match the chunk's bytes: chunk ${chunk.index} was corrupted in transit; send it again`,
    );
  }
}

// ---- server → client ---------------------------------------------------------------------------

export const validateAuthHello = protocolValidator(authHello);
export const validateRoundOpen = protocolValidator(roundOpen);
export const validateRoundClosed = protocolValidator(roundClosed);
export const validateWireError = protocolValidator(wireError);

/** The validator of each server-to-client event's payload. */
export const SERVER_PAYLOAD_VALIDATORS = Object.fromEntries(
  Object.entries(SERVER_MESSAGES).map(([event, payload]) => [event, protocolValidator<object>(payload)]),
) as { [E in ServerEventName]: (payload: unknown) => ServerPayload<E> };

// ---- acknowledgements (server → client) --------------------------------------------------------

/** The result type of client event `E`'s acknowledgement. */
export type AckPayload<E extends ClientEventName> = Parameters<Parameters<ClientToServerEvents[E]>[1]>[0];

const failedAck = object({ ok: literal(false), error: wireError });

// An ack is `{ ok: false, error }` or `{ ok: true, ...result }`; anything whose `ok` is not false
// is read as a success, so a missing or odd `ok` is reported against the success shape.
const ACK_VALIDATORS = Object.fromEntries(
  Object.entries(CLIENT_MESSAGES).map(([event, { result }]) => {
    const succeeded = object({
      ok: literal(true, { kind: 'TYPE', expected: 'true or false' }),
      ...result.shape,
    });
    return [event, protocolValidator(union('ok', [failedAck, succeeded]), 'ack')];
  }),
) as { [E in ClientEventName]: (value: unknown, field?: string) => AckPayload<E> };

/** Validates the acknowledgement the coordinator sent for client event `event`. */
export function validateAck<E extends ClientEventName>(
  event: E,
  value: unknown,
  field = 'ack',
): AckPayload<E> {
  if (!Object.hasOwn(ACK_VALIDATORS, event)) throw unknownEvent(event);
  return ACK_VALIDATORS[event](value, field);
}

/** The refusal of an event the protocol does not define (at the edge, and by the coordinator's socket). */
export function unknownEvent(event: unknown): ProtocolError {
  return new ProtocolError(
    'PROTOCOL_UNKNOWN_EVENT',
    'event',
    `event ${JSON.stringify(event)} is not a fedit client event`,
  );
}

// ---- errors to the peer ------------------------------------------------------------------------

/**
 * What to tell the peer about `error`: a FeditError's code, message and field as they are; for
 * anything else (a bug) a generic INTERNAL error, so no internals leak to the network. Pass only
 * errors about what the peer sent: a FeditError about the coordinator's own files names paths.
 */
export function toWireError(error: unknown): WireError {
  if (error instanceof FeditError) {
    const wire: WireError = { code: error.code, message: error.message.slice(0, MAX_ERROR_MESSAGE_LENGTH) };
    const field = (error as FeditError & { field?: unknown }).field;
    if (typeof field === 'string' && field.length > 0) wire.field = field.slice(0, 256);
    return wire;
  }
  return { code: 'INTERNAL', message: 'the coordinator failed to handle this request; it has been logged' };
}

/** A failed acknowledgement carrying `error`. */
export function ackError(error: unknown): AckResult<never> {
  return { ok: false, error: toWireError(error) };
}
