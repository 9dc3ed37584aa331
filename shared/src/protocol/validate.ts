// Validators for every payload that crosses the wire, hand-written: each checks types, exact byte
// lengths, integer ranges and string forms, rejects fields the protocol does not define, and
// returns a fresh object holding only the protocol's fields. A failure throws ProtocolError whose
// `field` is the path of the value at fault ('envelope.tensorSchema[3].shape[1]') and whose
// message starts with that path. The coordinator validates every client payload before it touches
// any state; the client validates what the coordinator sends the same way.
import { describe, plainBytes } from '../crypto/bytes.ts';
import { sha256 } from '../crypto/digest.ts';
import { AUTH_NONCE_BYTES } from '../crypto/auth.ts';
import { BOX_PUBLIC_KEY_BYTES } from '../crypto/identity.ts';
import { INVITE_TOKEN_BYTES } from '../crypto/invite.ts';
import { SEAL_OVERHEAD_BYTES } from '../crypto/seal.ts';
import { SIGNATURE_BYTES, SIGN_PUBLIC_KEY_BYTES } from '../crypto/sign.ts';
import { FeditError } from '../errors.ts';
import type { FloatDType } from '../tensors/dtype.ts';
import { ProtocolError } from './errors.ts';
import {
  CONTENT_HASH_PATTERN,
  FEDERATION_ID_PATTERN,
  MAX_CHUNK_BYTES,
  MAX_CHUNK_COUNT,
  MAX_DISPLAY_NAME_LENGTH,
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_EXAMPLE_COUNT,
  MAX_PAYLOAD_BYTES,
  MAX_ROUND,
  MAX_SELECTED,
  MAX_TENSOR_DIM,
  MAX_TENSOR_NAME_LENGTH,
  MAX_TENSOR_RANK,
  MAX_TENSORS,
  MAX_TIMESTAMP_MS,
  MIN_CHUNK_BYTES,
  PARTICIPANT_ID_PATTERN,
  UPLOAD_ID_PATTERN,
  chunkCountFor,
  chunkPlaintextBytes,
} from './limits.ts';
import type {
  AckResult,
  AdapterChunk,
  AdapterGet,
  FederationInfo,
  FederationInfoRequest,
  AuthHello,
  AuthProve,
  AuthResult,
  ClientEventName,
  ClientPayload,
  ClientToServerEvents,
  ContentHash,
  EnrolRequest,
  EnrolResult,
  RoundClosed,
  RoundOpen,
  RoundTraining,
  ServerEventName,
  ServerPayload,
  SignedEnvelope,
  TensorSpec,
  UpdateBegin,
  UpdateBeginResult,
  UpdateChunk,
  UpdateChunkResult,
  UpdateCommit,
  UpdateCommitResult,
  UpdateEnvelope,
  WireError,
} from './messages.ts';

const SHA256_BYTES = 32;
const FLOAT_DTYPES: readonly FloatDType[] = ['F32', 'F16', 'BF16'];
const CONTROL_CHARACTER = /\p{Cc}/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const encoder = new TextEncoder();

// ---- client → server ---------------------------------------------------------------------------

export function validateAuthProve(payload: unknown, field = 'payload'): AuthProve {
  const r = fields(payload, field, ['participant', 'signature']);
  return {
    participant: bytes(r.participant, `${field}.participant`, SIGN_PUBLIC_KEY_BYTES),
    signature: bytes(r.signature, `${field}.signature`, SIGNATURE_BYTES),
  };
}

export function validateEnrolRequest(payload: unknown, field = 'payload'): EnrolRequest {
  const r = fields(payload, field, ['token', 'identity', 'displayName', 'signature']);
  const identity = fields(r.identity, `${field}.identity`, ['sign', 'box']);
  return {
    token: bytes(r.token, `${field}.token`, INVITE_TOKEN_BYTES),
    identity: {
      sign: bytes(identity.sign, `${field}.identity.sign`, SIGN_PUBLIC_KEY_BYTES),
      box: bytes(identity.box, `${field}.identity.box`, BOX_PUBLIC_KEY_BYTES),
    },
    displayName: displayName(r.displayName, `${field}.displayName`),
    signature: bytes(r.signature, `${field}.signature`, SIGNATURE_BYTES),
  };
}

export function validateFederationInfoRequest(payload: unknown, field = 'payload'): FederationInfoRequest {
  fields(payload, field, []);
  return {};
}

export function validateAdapterGet(payload: unknown, field = 'payload'): AdapterGet {
  const r = fields(payload, field, ['hash', 'index']);
  return {
    hash: contentHash(r.hash, `${field}.hash`),
    index: integer(r.index, `${field}.index`, 0, MAX_CHUNK_COUNT - 1),
  };
}

export function validateUpdateBegin(payload: unknown, field = 'payload'): UpdateBegin {
  const r = fields(payload, field, ['envelope']);
  return { envelope: validateEnvelope(r.envelope, 'envelope') };
}

export function validateUpdateChunk(payload: unknown, field = 'payload'): UpdateChunk {
  const r = fields(payload, field, ['uploadId', 'index', 'data', 'sha256']);
  return {
    uploadId: uploadId(r.uploadId, `${field}.uploadId`),
    index: integer(r.index, `${field}.index`, 0, MAX_CHUNK_COUNT - 1),
    data: byteRange(r.data, `${field}.data`, SEAL_OVERHEAD_BYTES, MAX_CHUNK_BYTES + SEAL_OVERHEAD_BYTES),
    sha256: bytes(r.sha256, `${field}.sha256`, SHA256_BYTES),
  };
}

export function validateUpdateCommit(payload: unknown, field = 'payload'): UpdateCommit {
  const r = fields(payload, field, ['uploadId']);
  return {
    uploadId: uploadId(r.uploadId, `${field}.uploadId`),
  };
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

/** Validates a signed envelope's structure (not its signature: see verifyEnvelope). */
export function validateEnvelope(value: unknown, field = 'envelope'): SignedEnvelope {
  const r = fields(value, field, [...ENVELOPE_FIELDS, 'signature']);
  return {
    ...envelopeFields(r, field),
    signature: bytes(r.signature, `${field}.signature`, SIGNATURE_BYTES),
  };
}

/** Validates an envelope before it is signed (no `signature` field allowed). */
export function validateUnsignedEnvelope(value: unknown, field = 'envelope'): UpdateEnvelope {
  return envelopeFields(fields(value, field, ENVELOPE_FIELDS), field);
}

/** The fields of an update envelope (without its signature), in the order they are written. */
export const ENVELOPE_FIELDS = [
  'version',
  'federation',
  'round',
  'participant',
  'globalAdapterHash',
  'exampleCount',
  'tensorSchema',
  'payloadHash',
  'payloadBytes',
  'chunkBytes',
  'chunkCount',
  'createdAt',
] as const;

function envelopeFields(r: Record<string, unknown>, field: string): UpdateEnvelope {
  if (r.version !== 1) {
    if (r.version === undefined) missing(`${field}.version`);
    throw new ProtocolError(
      'PROTOCOL_RANGE',
      `${field}.version`,
      `${field}.version must be 1, got ${describe(r.version)}; the client and coordinator run incompatible fedit versions`,
    );
  }
  const payloadBytes = integer(r.payloadBytes, `${field}.payloadBytes`, 1, MAX_PAYLOAD_BYTES);
  const chunkBytes = integer(r.chunkBytes, `${field}.chunkBytes`, MIN_CHUNK_BYTES, MAX_CHUNK_BYTES);
  const chunkCount = integer(r.chunkCount, `${field}.chunkCount`, 1, MAX_CHUNK_COUNT);
  const expectedChunks = chunkCountFor(payloadBytes, chunkBytes);
  if (chunkCount !== expectedChunks) {
    throw new ProtocolError(
      'PROTOCOL_INCONSISTENT',
      `${field}.chunkCount`,
      `${field}.chunkCount is ${chunkCount}, but ${payloadBytes} bytes in chunks of ${chunkBytes} make ${expectedChunks}`,
    );
  }
  return {
    version: 1,
    federation: federationId(r.federation, `${field}.federation`),
    round: integer(r.round, `${field}.round`, 0, MAX_ROUND),
    participant: bytes(r.participant, `${field}.participant`, SIGN_PUBLIC_KEY_BYTES),
    globalAdapterHash: contentHash(r.globalAdapterHash, `${field}.globalAdapterHash`),
    exampleCount: integer(r.exampleCount, `${field}.exampleCount`, 1, MAX_EXAMPLE_COUNT),
    tensorSchema: tensorSchema(r.tensorSchema, `${field}.tensorSchema`),
    payloadHash: contentHash(r.payloadHash, `${field}.payloadHash`),
    payloadBytes,
    chunkBytes,
    chunkCount,
    createdAt: integer(r.createdAt, `${field}.createdAt`, 0, MAX_TIMESTAMP_MS),
  };
}

function tensorSchema(value: unknown, field: string): TensorSpec[] {
  const items = list(value, field, 1, MAX_TENSORS);
  let previous: Uint8Array | undefined;
  return items.map((item, i) => {
    const at = `${field}[${i}]`;
    const r = fields(item, at, ['name', 'shape', 'dtype']);
    const name = text(r.name, `${at}.name`, 1, MAX_TENSOR_NAME_LENGTH);
    const nameBytes = encoder.encode(name);
    // Strictly ascending names: unique, and one order for everyone, so the schema can be compared
    // with the global adapter's tensor list entry by entry.
    if (previous && Buffer.compare(previous, nameBytes) >= 0) {
      throw new ProtocolError(
        'PROTOCOL_INCONSISTENT',
        `${at}.name`,
        `${at}.name ${JSON.stringify(name)} must come after the previous tensor's name: names must be unique and in ascending (UTF-8 byte) order`,
      );
    }
    previous = nameBytes;
    const shape = list(r.shape, `${at}.shape`, 0, MAX_TENSOR_RANK).map((dim, d) =>
      integer(dim, `${at}.shape[${d}]`, 1, MAX_TENSOR_DIM),
    );
    if (typeof r.dtype !== 'string' || !(FLOAT_DTYPES as readonly string[]).includes(r.dtype)) {
      if (r.dtype === undefined) missing(`${at}.dtype`);
      throw new ProtocolError(
        'PROTOCOL_FORMAT',
        `${at}.dtype`,
        `${at}.dtype must be one of ${FLOAT_DTYPES.join(', ')}, got ${describe(r.dtype)}`,
      );
    }
    return { name, shape, dtype: r.dtype as FloatDType };
  });
}

/** The validator of each client-to-server event's payload. */
export const CLIENT_PAYLOAD_VALIDATORS: { [E in ClientEventName]: (payload: unknown) => ClientPayload<E> } = {
  'auth:prove': validateAuthProve,
  enrol: validateEnrolRequest,
  'federation:info': validateFederationInfoRequest,
  'adapter:get': validateAdapterGet,
  'update:begin': validateUpdateBegin,
  'update:chunk': validateUpdateChunk,
  'update:commit': validateUpdateCommit,
};

/** Validates `payload` as the payload of client event `event`; unknown events are refused. */
export function validateClientPayload<E extends ClientEventName>(
  event: E,
  payload: unknown,
): ClientPayload<E> {
  if (!Object.hasOwn(CLIENT_PAYLOAD_VALIDATORS, event)) {
    throw new ProtocolError(
      'PROTOCOL_UNKNOWN_EVENT',
      'event',
      `event ${JSON.stringify(event)} is not a fedit client event`,
    );
  }
  return CLIENT_PAYLOAD_VALIDATORS[event](payload);
}

// ---- server → client ---------------------------------------------------------------------------

export function validateAuthHello(payload: unknown, field = 'payload'): AuthHello {
  const r = fields(payload, field, ['protocol', 'federation', 'nonce']);
  return {
    protocol: integer(r.protocol, `${field}.protocol`, 1, 0xffff),
    federation: federationId(r.federation, `${field}.federation`),
    nonce: bytes(r.nonce, `${field}.nonce`, AUTH_NONCE_BYTES),
  };
}

export function validateRoundOpen(payload: unknown, field = 'payload'): RoundOpen {
  const r = fields(payload, field, [
    'round',
    'selected',
    'globalAdapterHash',
    'configHash',
    'deadline',
    'training',
  ]);
  return {
    round: integer(r.round, `${field}.round`, 0, MAX_ROUND),
    selected: list(r.selected, `${field}.selected`, 0, MAX_SELECTED).map((id, i) =>
      pattern(
        id,
        `${field}.selected[${i}]`,
        PARTICIPANT_ID_PATTERN,
        '32 lowercase hex digits (a participant id)',
      ),
    ),
    globalAdapterHash: contentHash(r.globalAdapterHash, `${field}.globalAdapterHash`),
    configHash: contentHash(r.configHash, `${field}.configHash`),
    deadline: integer(r.deadline, `${field}.deadline`, 0, MAX_TIMESTAMP_MS),
    training: roundTraining(r.training, `${field}.training`),
  };
}

function roundTraining(value: unknown, field: string): RoundTraining {
  const r = fields(value, field, ['steps', 'learningRate', 'batchSize', 'seed']);
  const learningRate = r.learningRate;
  if (typeof learningRate !== 'number' || !(learningRate > 0) || !(learningRate <= 1)) {
    if (learningRate === undefined) missing(`${field}.learningRate`);
    throw new ProtocolError(
      typeof learningRate === 'number' ? 'PROTOCOL_RANGE' : 'PROTOCOL_TYPE',
      `${field}.learningRate`,
      `${field}.learningRate must be a number above 0 and at most 1, got ${describe(learningRate)}`,
    );
  }
  return {
    steps: integer(r.steps, `${field}.steps`, 1, 10_000_000),
    learningRate,
    batchSize: integer(r.batchSize, `${field}.batchSize`, 1, 1_000_000),
    seed: integer(r.seed, `${field}.seed`, 0, 0xffffffff),
  };
}

export function validateRoundClosed(payload: unknown, field = 'payload'): RoundClosed {
  const r = fields(payload, field, ['round', 'outcome', 'adapterHash', 'participants']);
  if (r.outcome !== 'aggregated' && r.outcome !== 'aborted') {
    if (r.outcome === undefined) missing(`${field}.outcome`);
    throw new ProtocolError(
      'PROTOCOL_FORMAT',
      `${field}.outcome`,
      `${field}.outcome must be "aggregated" or "aborted", got ${describe(r.outcome)}`,
    );
  }
  return {
    round: integer(r.round, `${field}.round`, 0, MAX_ROUND),
    outcome: r.outcome,
    adapterHash: contentHash(r.adapterHash, `${field}.adapterHash`),
    participants: integer(r.participants, `${field}.participants`, 0, MAX_SELECTED),
  };
}

export function validateWireError(payload: unknown, field = 'payload'): WireError {
  const r = fields(payload, field, ['code', 'message', 'field']);
  const error: WireError = {
    code: pattern(
      r.code,
      `${field}.code`,
      /^[A-Z][A-Z0-9_]{0,63}$/,
      'an upper-case code such as PROTOCOL_RANGE',
    ),
    message: text(r.message, `${field}.message`, 1, MAX_ERROR_MESSAGE_LENGTH),
  };
  if (r.field !== undefined) error.field = text(r.field, `${field}.field`, 1, 256);
  return error;
}

/** The validator of each server-to-client event's payload. */
export const SERVER_PAYLOAD_VALIDATORS: { [E in ServerEventName]: (payload: unknown) => ServerPayload<E> } = {
  'auth:hello': validateAuthHello,
  'round:open': validateRoundOpen,
  'round:closed': validateRoundClosed,
  error: validateWireError,
};

// ---- acknowledgements (server → client) --------------------------------------------------------

/** The result type of client event `E`'s acknowledgement. */
export type AckPayload<E extends ClientEventName> = Parameters<Parameters<ClientToServerEvents[E]>[1]>[0];

const ACK_RESULT_VALIDATORS: {
  [E in ClientEventName]: (r: Record<string, unknown>, field: string) => object;
} = {
  'auth:prove': (r, field): AuthResult => ({
    participantId: participantId(r.participantId, `${field}.participantId`),
  }),
  enrol: (r, field): EnrolResult => ({
    participantId: participantId(r.participantId, `${field}.participantId`),
  }),
  'federation:info': (r, field): FederationInfo => ({
    config: text(r.config, `${field}.config`, 1, 1 << 20),
    configHash: contentHash(r.configHash, `${field}.configHash`),
  }),
  'adapter:get': (r, field): AdapterChunk => ({
    data: byteRange(r.data, `${field}.data`, 0, MAX_CHUNK_BYTES),
    total: integer(r.total, `${field}.total`, 1, MAX_CHUNK_COUNT),
  }),
  'update:begin': (r, field): UpdateBeginResult => ({
    uploadId: uploadId(r.uploadId, `${field}.uploadId`),
    resumeFrom: integer(r.resumeFrom, `${field}.resumeFrom`, 0, MAX_CHUNK_COUNT),
  }),
  'update:chunk': (r, field): UpdateChunkResult => ({
    received: integer(r.received, `${field}.received`, 0, MAX_CHUNK_COUNT),
  }),
  'update:commit': (): UpdateCommitResult => ({}),
};

const ACK_RESULT_FIELDS: { [E in ClientEventName]: readonly string[] } = {
  'auth:prove': ['participantId'],
  enrol: ['participantId'],
  'federation:info': ['config', 'configHash'],
  'adapter:get': ['data', 'total'],
  'update:begin': ['uploadId', 'resumeFrom'],
  'update:chunk': ['received'],
  'update:commit': [],
};

/** Validates the acknowledgement the coordinator sent for client event `event`. */
export function validateAck<E extends ClientEventName>(
  event: E,
  value: unknown,
  field = 'ack',
): AckPayload<E> {
  if (!Object.hasOwn(ACK_RESULT_VALIDATORS, event)) {
    throw new ProtocolError(
      'PROTOCOL_UNKNOWN_EVENT',
      'event',
      `event ${JSON.stringify(event)} is not a fedit client event`,
    );
  }
  if (isRecord(value) && value.ok === false) {
    const r = fields(value, field, ['ok', 'error']);
    return { ok: false, error: validateWireError(r.error, `${field}.error`) } as AckPayload<E>;
  }
  const r = fields(value, field, ['ok', ...ACK_RESULT_FIELDS[event]]);
  if (r.ok !== true) {
    if (r.ok === undefined) missing(`${field}.ok`);
    throw new ProtocolError(
      'PROTOCOL_TYPE',
      `${field}.ok`,
      `${field}.ok must be true or false, got ${describe(r.ok)}`,
    );
  }
  return { ok: true, ...ACK_RESULT_VALIDATORS[event](r, field) } as AckPayload<E>;
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

// ---- primitives --------------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

function fields(value: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (value === undefined) missing(field);
  if (!isRecord(value)) {
    throw new ProtocolError('PROTOCOL_TYPE', field, `${field} must be a map, got ${describe(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new ProtocolError(
        'PROTOCOL_UNKNOWN_FIELD',
        `${field}.${key}`,
        `${field}.${key} is not a field of this message (expected: ${allowed.join(', ')})`,
      );
    }
  }
  return value;
}

function missing(field: string): never {
  throw new ProtocolError('PROTOCOL_MISSING', field, `${field} is required`);
}

function bytes(value: unknown, field: string, length: number): Uint8Array {
  return byteRange(value, field, length, length);
}

function byteRange(value: unknown, field: string, min: number, max: number): Uint8Array {
  if (value === undefined) missing(field);
  if (!(value instanceof Uint8Array)) {
    throw new ProtocolError('PROTOCOL_TYPE', field, `${field} must be bytes, got ${describe(value)}`);
  }
  if (value.byteLength < min || value.byteLength > max) {
    const expected = min === max ? `exactly ${min} bytes` : `${min} to ${max} bytes`;
    throw new ProtocolError('PROTOCOL_RANGE', field, `${field} must be ${expected}, got ${value.byteLength}`);
  }
  return plainBytes(value);
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (value === undefined) missing(field);
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ProtocolError('PROTOCOL_TYPE', field, `${field} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) {
    throw new ProtocolError('PROTOCOL_RANGE', field, `${field} must be from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function text(value: unknown, field: string, min: number, max: number): string {
  if (value === undefined) missing(field);
  if (typeof value !== 'string') {
    throw new ProtocolError('PROTOCOL_TYPE', field, `${field} must be a string, got ${describe(value)}`);
  }
  if (value.length < min || value.length > max) {
    throw new ProtocolError(
      'PROTOCOL_RANGE',
      field,
      `${field} must be ${min} to ${max} characters long, got ${value.length}`,
    );
  }
  if (CONTROL_CHARACTER.test(value) || LONE_SURROGATE.test(value)) {
    throw new ProtocolError(
      'PROTOCOL_FORMAT',
      field,
      `${field} holds a control character or an invalid UTF-16 sequence`,
    );
  }
  return value;
}

function pattern(value: unknown, field: string, regex: RegExp, form: string): string {
  if (value === undefined) missing(field);
  if (typeof value !== 'string') {
    throw new ProtocolError('PROTOCOL_TYPE', field, `${field} must be a string, got ${describe(value)}`);
  }
  if (!regex.test(value)) {
    throw new ProtocolError('PROTOCOL_FORMAT', field, `${field} must be ${form}, got ${describe(value)}`);
  }
  return value;
}

function list(value: unknown, field: string, min: number, max: number): unknown[] {
  if (value === undefined) missing(field);
  if (!Array.isArray(value)) {
    throw new ProtocolError('PROTOCOL_TYPE', field, `${field} must be a list, got ${describe(value)}`);
  }
  if (value.length < min || value.length > max) {
    throw new ProtocolError(
      'PROTOCOL_RANGE',
      field,
      `${field} must hold ${min} to ${max} entries, got ${value.length}`,
    );
  }
  return value as unknown[];
}

function contentHash(value: unknown, field: string): ContentHash {
  return pattern(
    value,
    field,
    CONTENT_HASH_PATTERN,
    '"sha256:" followed by 64 lowercase hex digits',
  ) as ContentHash;
}

function uploadId(value: unknown, field: string): ContentHash {
  return pattern(
    value,
    field,
    UPLOAD_ID_PATTERN,
    '"sha256:" followed by 64 lowercase hex digits (the envelope id)',
  ) as ContentHash;
}

function federationId(value: unknown, field: string): string {
  return pattern(
    value,
    field,
    FEDERATION_ID_PATTERN,
    "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
  );
}

function participantId(value: unknown, field: string): string {
  return pattern(value, field, PARTICIPANT_ID_PATTERN, '32 lowercase hex digits (a participant id)');
}

function displayName(value: unknown, field: string): string {
  const name = text(value, field, 1, MAX_DISPLAY_NAME_LENGTH);
  if (name.trim() !== name || name.length === 0) {
    throw new ProtocolError('PROTOCOL_FORMAT', field, `${field} must not start or end with spaces`);
  }
  return name;
}
