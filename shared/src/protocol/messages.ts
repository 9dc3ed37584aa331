// Every message of the fedit wire protocol, declared once: each declaration is both the validator
// the receiving side runs (validate.ts) and, through Infer, the TypeScript type both ends compile
// against. The typed socket.io event maps are derived from the two event tables at the end:
//
//   const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, { parser: msgpackParser, ... });
//   const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, { parser: msgpackParser });
//
// Byte fields are Uint8Arrays (MessagePack bin): keys and signatures are raw bytes, never text.
// Content hashes (adapters, payloads, configs) are `sha256:<64 hex>` text, the form hashTensors
// and the blob store use. Objects are strict: a field not declared here is refused at the edge.
// docs/protocol.md describes the flow. The field types several messages share are in fields.ts;
// the update upload's messages (the envelope, update:begin/chunk/commit) in update-messages.ts.
import { AUTH_NONCE_BYTES } from '../crypto/auth.ts';
import { BOX_PUBLIC_KEY_BYTES } from '../crypto/identity.ts';
import { INVITE_TOKEN_BYTES } from '../crypto/invite.ts';
import { RENAME_NONCE_BYTES } from './rename.ts';
import {
  bytes,
  int,
  isRecord,
  list,
  object,
  oneOf,
  optional,
  pattern,
  predicate,
  text,
  type Infer,
  type Schema,
} from '../schema/schema.ts';
import { LOG_PROOF_MESSAGES } from './log-proofs.ts';
import {
  secaggAdvertise,
  secaggConsistency,
  secaggInbox,
  secaggInboxRequest,
  secaggReveal,
  secaggShares,
} from './secagg-messages.ts';
import { MAX_CHUNK_BYTES, MAX_CHUNK_COUNT, MAX_ERROR_MESSAGE_LENGTH, MAX_SELECTED } from './limits.ts';

import {
  chunkIndex,
  contentHash,
  displayName,
  federationId,
  participantId,
  signKey,
  signature,
} from './fields.ts';
import {
  updateBegin,
  updateBeginResult,
  updateChunk,
  updateChunkResult,
  updateCommit,
  updateCommitResult,
} from './update-messages.ts';
export type { ContentHash, ParticipantId, UploadId } from './fields.ts';
export * from './update-messages.ts';

/** What a peer is told when something it sent is refused. */
export const wireError = object({
  /** Stable code, e.g. PROTOCOL_RANGE, CRYPTO_OPEN_FAILED, ROUND_CLOSED. */
  code: pattern(/^[A-Z][A-Z0-9_]{0,63}$/, 'an upper-case code such as PROTOCOL_RANGE'),
  /** A sentence a person can act on. */
  message: text(1, MAX_ERROR_MESSAGE_LENGTH),
  /** The path of the field at fault, e.g. 'envelope.exampleCount'. */
  field: optional(text(1, 256)),
});
export type WireError = Infer<typeof wireError>;

/** The one argument of every acknowledgement: success with its result, or the reason it failed. */
export type AckResult<T extends object = object> = ({ ok: true } & T) | { ok: false; error: WireError };
export type Ack<T extends object = object> = (result: AckResult<T>) => void;

// ---- authentication and enrolment -------------------------------------------------------------

/** Server → client, on every connection, before anything else. */
export const authHello = object({
  protocol: int(1, 0xffff),
  federation: federationId,
  /** 32 random bytes, fresh for this connection. */
  nonce: bytes(AUTH_NONCE_BYTES),
});
export type AuthHello = Infer<typeof authHello>;

/** Client → server: proof of an enrolled identity (see crypto/auth.ts). */
export const authProve = object({
  /** The participant's Ed25519 public key. */
  participant: signKey,
  /** Signature of authDigest under 'fedit/auth/v1'. */
  signature,
});
export type AuthProve = Infer<typeof authProve>;

export const authResult = object({ participantId });
export type AuthResult = Infer<typeof authResult>;

/** Client → server: first contact of a new participant, with the invite's one-time token. */
export const enrolRequest = object({
  token: bytes(INVITE_TOKEN_BYTES),
  identity: object({ sign: signKey, box: bytes(BOX_PUBLIC_KEY_BYTES) }),
  displayName,
  /** Signature of enrolmentDigest under 'fedit/enrol/v1' (binds the connection's nonce). */
  signature,
});
export type EnrolRequest = Infer<typeof enrolRequest>;

export const enrolResult = object({ participantId });
export type EnrolResult = Infer<typeof enrolResult>;

/** Client → server, authenticated: show me under a new name (see rename.ts for the signature). */
export const renameRequest = object({
  displayName,
  /** 32 random bytes the participant picks; a nonce the log already holds is a replay. */
  nonce: bytes(RENAME_NONCE_BYTES),
  /** Signature of renameDigest under 'fedit/rename/v1', recorded in the rename record. */
  signature,
});
export type RenameRequest = Infer<typeof renameRequest>;

export const renameResult = object({ displayName });
export type RenameResult = Infer<typeof renameResult>;

// ---- readiness -------------------------------------------------------------------------------

/**
 * Client → server, on an authenticated connection: whether this participant can train a round now
 * (its base model verified, its data validated) or not (paused, leaving). Rounds select only among
 * participants who said they are ready; a connection starts not ready, and a disconnect makes its
 * participant not ready. Enrolling (`fedit client join`, the app's Join) never says ready.
 */
export const participantReady = object({
  ready: oneOf([true, false], { expected: 'true or false' }),
  /** Why not, in words (shown to the operator): "paused", "leaving". */
  reason: optional(text(1, 200)),
});
export type ParticipantReady = Infer<typeof participantReady>;

export const participantReadyResult = object({
  /** Participants ready now, this one included when it said ready. */
  readyParticipants: int(0, MAX_SELECTED),
  /** How many ready participants a round needs to open (participantsPerRound.minimum). */
  needed: int(0, MAX_SELECTED),
});
export type ParticipantReadyResult = Infer<typeof participantReadyResult>;

// ---- rounds and settings: signed round records ------------------------------------------------

// Everything a participant acts on arrives as the signed record of the coordinator's round log
// that says it (rounds/announcement.ts reads the participant's view from it, after checking the
// signature under the coordinator key the invite pins). Here a record is only an object: its
// shape is the log's own parser's to check (parseRoundRecord), with the log's wording.
const signedRecord = predicate<object>(isRecord, 'is not a round record (an object)', 'TYPE');

/**
 * Server → client: a secure round's phase: its secagg-keys, secagg-shares, secagg-unmask or
 * secagg-consistency record.
 * With secagg-keys come the public identities of the advertisers, so that each holder checks every
 * advert's signature without trusting the coordinator for keys: an identity counts only when its
 * fingerprint is the participant id (secure-round.ts on the participant's side).
 */
export const secaggPhaseMessage = object({
  record: signedRecord,
  identities: optional(
    list(
      object({ participant: participantId, sign: signKey, box: bytes(BOX_PUBLIC_KEY_BYTES) }),
      0,
      MAX_SELECTED,
    ),
  ),
});
export type SecaggPhaseMessage = Infer<typeof secaggPhaseMessage>;

/** Server → client: round `record.round` is open: its round-open record. */
export const roundOpen = object({ record: signedRecord });
export type RoundOpenMessage = Infer<typeof roundOpen>;

/**
 * Server → client: a round is over: its round-closed record, or its round-aborted record with the
 * round's round-open record (`opened`), which names the global adapter an aborted round leaves.
 */
export const roundClosed = object({ record: signedRecord, opened: optional(signedRecord) });
export type RoundClosedMessage = Infer<typeof roundClosed>;

/**
 * Server → client: the federation ran all its rounds: the record of its last aggregated round, which
 * names the final global adapter. Sent to everyone online when the last round ends and to each
 * participant who authenticates afterwards; the coordinator goes on serving that adapter (fetch
 * it with 'adapter:get') and refuses updates until it is stopped.
 */
export const federationFinished = object({ record: signedRecord });
export type FederationFinishedMessage = Infer<typeof federationFinished>;

/** Client → server: the federation's settings (no payload fields). Allowed before enrolment, so a
 * person can read what they are joining. */
export const federationInfoRequest = object({});
export type FederationInfoRequest = Infer<typeof federationInfoRequest>;

/**
 * The federation's config record: the config JSON text and its hash, signed (the log's first
 * record). With differential privacy also the last round-closed record, whose privacy account says
 * what was spent so far (absent before the first round closes, and without DP).
 */
export const federationInfo = object({ record: signedRecord, lastClosed: optional(signedRecord) });
export type FederationInfo = Infer<typeof federationInfo>;

// ---- adapter download ------------------------------------------------------------------------

/** Client → server: chunk `index` of the adapter file (safetensors bytes) whose content hash is `hash`. */
export const adapterGet = object({ hash: contentHash, index: chunkIndex });
export type AdapterGet = Infer<typeof adapterGet>;

export const adapterChunk = object({
  data: bytes(0, MAX_CHUNK_BYTES),
  /** Number of chunks of the whole file. */
  total: int(1, MAX_CHUNK_COUNT),
});
export type AdapterChunk = Infer<typeof adapterChunk>;

// ---- the events, and the socket.io event maps derived from them ------------------------------

/** A secure round's step was taken (the refusals say why not). */
const secaggAck = object({});

/** Each client-to-server event: its payload, and the result its acknowledgement carries. */
export const CLIENT_MESSAGES = {
  'auth:prove': { payload: authProve, result: authResult },
  enrol: { payload: enrolRequest, result: enrolResult },
  'participant:rename': { payload: renameRequest, result: renameResult },
  'federation:info': { payload: federationInfoRequest, result: federationInfo },
  'participant:ready': { payload: participantReady, result: participantReadyResult },
  'adapter:get': { payload: adapterGet, result: adapterChunk },
  'update:begin': { payload: updateBegin, result: updateBeginResult },
  'update:chunk': { payload: updateChunk, result: updateChunkResult },
  'update:commit': { payload: updateCommit, result: updateCommitResult },
  ...LOG_PROOF_MESSAGES,
  // A secure round's phases (secagg-messages.ts; the masked input itself goes through update:*).
  'secagg:advertise': { payload: secaggAdvertise, result: secaggAck },
  'secagg:shares': { payload: secaggShares, result: secaggAck },
  'secagg:inbox': { payload: secaggInboxRequest, result: secaggInbox },
  'secagg:consistency': { payload: secaggConsistency, result: secaggAck },
  'secagg:reveal': { payload: secaggReveal, result: secaggAck },
} as const satisfies Record<string, { payload: Schema<object>; result: Schema<object> }>;

/** Each server-to-client event's payload. */
export const SERVER_MESSAGES = {
  'auth:hello': authHello,
  'round:open': roundOpen,
  'round:closed': roundClosed,
  'federation:finished': federationFinished,
  /** A secure round's secagg-keys, -shares, -unmask or -consistency record, as signed. */
  'secagg:phase': secaggPhaseMessage,
  /** Something the client sent outside an acknowledged request was refused. */
  error: wireError,
} as const satisfies Record<string, Schema<object>>;

type ClientMessages = typeof CLIENT_MESSAGES;

export type ClientToServerEvents = {
  [E in keyof ClientMessages]: (
    payload: Infer<ClientMessages[E]['payload']>,
    ack: Ack<Infer<ClientMessages[E]['result']>>,
  ) => void;
};

export type ServerToClientEvents = {
  [E in keyof typeof SERVER_MESSAGES]: (payload: Infer<(typeof SERVER_MESSAGES)[E]>) => void;
};

export type ClientEventName = keyof ClientToServerEvents;
export type ServerEventName = keyof ServerToClientEvents;
/** The payload type of a client-to-server event. */
export type ClientPayload<E extends ClientEventName> = Parameters<ClientToServerEvents[E]>[0];
/** The payload type of a server-to-client event. */
export type ServerPayload<E extends ServerEventName> = Parameters<ServerToClientEvents[E]>[0];

export const CLIENT_EVENTS = Object.keys(CLIENT_MESSAGES) as readonly ClientEventName[];
export const SERVER_EVENTS = Object.keys(SERVER_MESSAGES) as readonly ServerEventName[];
