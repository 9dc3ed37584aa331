// Every message of the fedit wire protocol, and the typed socket.io event maps both ends compile
// against:
//
//   const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, { parser: msgpackParser, ... });
//   const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, { parser: msgpackParser });
//
// Byte fields are Uint8Arrays (MessagePack bin): keys and signatures are raw bytes, never text.
// Content hashes (adapters, payloads, configs) are `sha256:<64 hex>` text, the form hashTensors
// and the blob store use. Every client-to-server payload has a validator in validate.ts; the
// coordinator runs it before the payload touches any state. docs/protocol.md describes the flow.
import type { FloatDType } from '../tensors/dtype.ts';

/** `sha256:` followed by 64 lowercase hex digits. */
export type ContentHash = `sha256:${string}`;
/** A participant's id: the fingerprint of its public identity, 32 lowercase hex digits. */
export type ParticipantId = string;
/** An upload's id: its envelope id, `sha256:` + hex of the envelope digest. */
export type UploadId = ContentHash;

/** What a peer is told when something it sent is refused. */
export interface WireError {
  /** Stable code, e.g. PROTOCOL_RANGE, CRYPTO_OPEN_FAILED, ROUND_CLOSED. */
  code: string;
  /** A sentence a person can act on. */
  message: string;
  /** The path of the field at fault, e.g. 'envelope.exampleCount'. */
  field?: string;
}

/** The one argument of every acknowledgement: success with its result, or the reason it failed. */
export type AckResult<T extends object = object> = ({ ok: true } & T) | { ok: false; error: WireError };
export type Ack<T extends object = object> = (result: AckResult<T>) => void;

// ---- authentication and enrolment -------------------------------------------------------------

/** Server → client, on every connection, before anything else. */
export interface AuthHello {
  protocol: number;
  federation: string;
  /** 32 random bytes, fresh for this connection. */
  nonce: Uint8Array;
}

/** Client → server: proof of an enrolled identity (see crypto/auth.ts). */
export interface AuthProve {
  /** The participant's Ed25519 public key. */
  participant: Uint8Array;
  /** Signature of authDigest under 'fedit/auth/v1'. */
  signature: Uint8Array;
}

export interface AuthResult {
  participantId: ParticipantId;
}

/** Client → server: first contact of a new participant, with the invite's one-time token. */
export interface EnrolRequest {
  token: Uint8Array;
  identity: { sign: Uint8Array; box: Uint8Array };
  displayName: string;
  /** Signature of enrolmentDigest under 'fedit/enrol/v1' (binds the connection's nonce). */
  signature: Uint8Array;
}

export interface EnrolResult {
  participantId: ParticipantId;
}

// ---- rounds ----------------------------------------------------------------------------------

/** Local training settings of one round. */
export interface RoundTraining {
  /** Optimizer steps each participant runs. */
  steps: number;
  learningRate: number;
  batchSize: number;
  /** Seed for data order and dropout; participants mix in their own id. */
  seed: number;
}

/** Server → client: round `round` is open to the selected participants. */
export interface RoundOpen {
  round: number;
  selected: ParticipantId[];
  /** The adapter to start from (fetch it with 'adapter:get'). */
  globalAdapterHash: ContentHash;
  /** Hash of the federation config the round runs under (base model, LoRA, privacy settings). */
  configHash: ContentHash;
  /** Uploads must be committed before this time, ms since the epoch. */
  deadline: number;
  training: RoundTraining;
}

/** Server → client: round `round` is over. */
export interface RoundClosed {
  round: number;
  outcome: 'aggregated' | 'aborted';
  /** The global adapter after the round (unchanged when aborted). */
  adapterHash: ContentHash;
  /** Updates counted into the aggregate. */
  participants: number;
}

// ---- federation settings ---------------------------------------------------------------------
/** Client → server: the federation's settings (no payload fields). Allowed before enrolment, so a
 * person can read what they are joining. */
export type FederationInfoRequest = Record<string, never>;
export interface FederationInfo {
  /** The federation config as JSON text (base model identity, LoRA, training, rounds, limits). */
  config: string;
  /** Its hash, as announced with every round. */
  configHash: ContentHash;
}

// ---- adapter download ------------------------------------------------------------------------

/** Client → server: chunk `index` of the adapter file (safetensors bytes) whose content hash is `hash`. */
export interface AdapterGet {
  hash: ContentHash;
  index: number;
}

export interface AdapterChunk {
  data: Uint8Array;
  /** Number of chunks of the whole file. */
  total: number;
}

// ---- update upload ---------------------------------------------------------------------------

/** One tensor of an update, as the envelope announces it. */
export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: FloatDType;
}

/** What a participant commits to before sending an update; see envelope.ts. */
export interface UpdateEnvelope {
  version: 1;
  federation: string;
  round: number;
  /** The participant's Ed25519 public key. */
  participant: Uint8Array;
  /** The global adapter the update was trained from. */
  globalAdapterHash: ContentHash;
  exampleCount: number;
  /** Tensors of the update, names strictly ascending. */
  tensorSchema: TensorSpec[];
  /** SHA-256 of the plaintext serialised update. */
  payloadHash: ContentHash;
  payloadBytes: number;
  /** Plaintext bytes per chunk; the last chunk may be shorter. */
  chunkBytes: number;
  chunkCount: number;
  /** When the participant made the envelope, ms since the epoch. */
  createdAt: number;
}

export interface SignedEnvelope extends UpdateEnvelope {
  /** Signature of envelopeDigest under 'fedit/envelope/v1'. */
  signature: Uint8Array;
}

/** Client → server: start (or resume) an upload. */
export interface UpdateBegin {
  envelope: SignedEnvelope;
}

export interface UpdateBeginResult {
  uploadId: UploadId;
  /** The first chunk index the coordinator does not hold yet (chunkCount when all are there). */
  resumeFrom: number;
}

/** Client → server: one sealed chunk. */
export interface UpdateChunk {
  uploadId: UploadId;
  index: number;
  /** sealChunk output: ciphertext || 16-byte tag. */
  data: Uint8Array;
  /** SHA-256 of `data`, so corruption is told apart from tampering before decryption. */
  sha256: Uint8Array;
}

export interface UpdateChunkResult {
  /** Chunks the coordinator now holds for this upload. */
  received: number;
}

/** Client → server: every chunk is sent; verify and count the update. */
export interface UpdateCommit {
  uploadId: UploadId;
}

export type UpdateCommitResult = object;

// ---- the socket.io event maps ----------------------------------------------------------------

export interface ClientToServerEvents {
  'auth:prove': (payload: AuthProve, ack: Ack<AuthResult>) => void;
  enrol: (payload: EnrolRequest, ack: Ack<EnrolResult>) => void;
  'federation:info': (payload: FederationInfoRequest, ack: Ack<FederationInfo>) => void;
  'adapter:get': (payload: AdapterGet, ack: Ack<AdapterChunk>) => void;
  'update:begin': (payload: UpdateBegin, ack: Ack<UpdateBeginResult>) => void;
  'update:chunk': (payload: UpdateChunk, ack: Ack<UpdateChunkResult>) => void;
  'update:commit': (payload: UpdateCommit, ack: Ack<UpdateCommitResult>) => void;
}

export interface ServerToClientEvents {
  'auth:hello': (payload: AuthHello) => void;
  'round:open': (payload: RoundOpen) => void;
  'round:closed': (payload: RoundClosed) => void;
  /** Something the client sent outside an acknowledged request was refused. */
  error: (payload: WireError) => void;
}

export type ClientEventName = keyof ClientToServerEvents;
export type ServerEventName = keyof ServerToClientEvents;
/** The payload type of a client-to-server event. */
export type ClientPayload<E extends ClientEventName> = Parameters<ClientToServerEvents[E]>[0];
/** The payload type of a server-to-client event. */
export type ServerPayload<E extends ServerEventName> = Parameters<ServerToClientEvents[E]>[0];

export const CLIENT_EVENTS = [
  'auth:prove',
  'enrol',
  'federation:info',
  'adapter:get',
  'update:begin',
  'update:chunk',
  'update:commit',
] as const satisfies readonly ClientEventName[];

export const SERVER_EVENTS = [
  'auth:hello',
  'round:open',
  'round:closed',
  'error',
] as const satisfies readonly ServerEventName[];
