// A hand-built participant: a real socket.io client with fedit's MessagePack parser that speaks
// the protocol message by message, so a test can send exactly what an honest participant sends —
// or anything else: wrong types, forged signatures, tampered chunks, oversized frames. It is a
// peer of the coordinator under test, not a stand-in for any of its code.

import { io, type Socket } from 'socket.io-client';
import {
  DOMAINS,
  FINISHED_RECORD_KINDS,
  federationFinishedView,
  roundClosedView,
  roundOpenView,
  verifyAnnouncedRecord,
  type FederationFinishedMessage,
  type RoundClosedMessage,
  type RoundOpenMessage,
  type RoundRecordKind,
  envelopeDigest,
  chunkCountFor,
  envelopeId,
  fingerprint,
  generateIdentity,
  msgpackParser,
  parseSafetensors,
  proveAuth,
  sealedChunkMessage,
  sealedUpload,
  publicIdentity,
  serializeSafetensors,
  sha256Hash,
  signDigest,
  signEnrolment,
  signEnvelope,
  uploadPass,
  tensorFromF32,
  tensorToF32,
  type AuthContext,
  type AuthHello,
  type ContentHash,
  type FederationFinished,
  type Identity,
  type RoundClosed,
  type RoundOpen,
  type SignedEnvelope,
  type Tensor,
  type UpdateEnvelope,
  type UploadEvent,
  type UploadKey,
  type UploadRequest,
  type WireError,
} from '@fedit/shared';
import { WAIT_LIMIT_MS, withinLimit, type Target } from './federation.ts';

/** An acknowledgement as it arrived: success with its fields, or a refusal. */
export type Ack = { ok: true; [field: string]: unknown } | { ok: false; error: WireError };

/** socket.io's emit without the protocol's typing, for sending what the protocol forbids. */
interface LooseSocket {
  emit(event: string, ...args: unknown[]): unknown;
  timeout(ms: number): { emitWithAck(event: string, ...args: unknown[]): Promise<unknown> };
}

export class Peer {
  readonly identity: Identity;
  readonly id: string;
  readonly socket: Socket;
  readonly opens: RoundOpen[] = [];
  readonly closes: RoundClosed[] = [];
  readonly finishes: FederationFinished[] = [];
  readonly errors: WireError[] = [];
  /** Resolves with socket.io's reason when the connection closes. */
  readonly disconnected: Promise<string>;
  #hello!: AuthHello;
  #listeners: (() => void)[] = [];

  private constructor(
    readonly target: Target,
    identity: Identity,
  ) {
    this.identity = identity;
    this.id = fingerprint(publicIdentity(identity));
    this.socket = io(target.url, {
      parser: msgpackParser,
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    const notify = () => this.#listeners.splice(0).forEach((f) => f());
    // Read as an honest participant reads them: from the records, checked as the coordinator's.
    const trust = { federation: target.federation, coordinator: target.coordinator };
    const signed = <K extends RoundRecordKind>(record: unknown, kinds: readonly K[]) =>
      verifyAnnouncedRecord(record, kinds, trust, kinds.join(' or '));
    this.socket.on('round:open', ({ record }: RoundOpenMessage) => {
      this.opens.push(roundOpenView(signed(record, ['round-open']), target.config));
      notify();
    });
    this.socket.on('round:closed', ({ record, opened }: RoundClosedMessage) => {
      const open = opened === undefined ? undefined : signed(opened, ['round-open']);
      this.closes.push(roundClosedView(signed(record, ['round-closed', 'round-aborted']), open));
      notify();
    });
    this.socket.on('federation:finished', ({ record }: FederationFinishedMessage) => {
      this.finishes.push(federationFinishedView(signed(record, FINISHED_RECORD_KINDS), target.config));
      notify();
    });
    this.socket.on('error', (error: WireError) => {
      this.errors.push(error);
      notify();
    });
    this.disconnected = new Promise((resolve) => this.socket.on('disconnect', (reason) => resolve(reason)));
  }

  /** Connects (a new identity unless one is given) and waits for 'auth:hello'. */
  static async connect(target: Target, identity: Identity = generateIdentity()): Promise<Peer> {
    const peer = new Peer(target, identity);
    peer.#hello = await withinLimit(
      new Promise<AuthHello>((resolve, reject) => {
        peer.socket.once('auth:hello', resolve);
        peer.socket.once('connect_error', reject);
      }),
      () => `auth:hello from ${target.url}`,
    );
    return peer;
  }

  /** The context this connection's auth:hello binds proofs and enrolments to. */
  get context(): AuthContext {
    return {
      federation: this.#hello.federation,
      coordinator: this.target.coordinator.sign,
      nonce: this.#hello.nonce,
    };
  }

  /** Sends `event` with any payload and waits for its acknowledgement. */
  async request(event: string, payload: unknown): Promise<Ack> {
    return (await (this.socket as unknown as LooseSocket)
      .timeout(WAIT_LIMIT_MS)
      .emitWithAck(event, payload)) as Ack;
  }

  /** Sends `event` without an acknowledgement callback. */
  send(event: string, ...args: unknown[]): void {
    (this.socket as unknown as LooseSocket).emit(event, ...args);
  }

  enrol(token: Uint8Array, displayName = 'peer'): Promise<Ack> {
    return this.request('enrol', signEnrolment(this.identity, this.context, { token, displayName }));
  }

  prove(): Promise<Ack> {
    return this.request('auth:prove', proveAuth(this.identity, this.context));
  }

  /**
   * Enrols with `token`, failing the test's promise on a refusal; then says it is ready to train
   * (as `fedit client run` does once its model and data are loaded) unless `ready` is false (a
   * bare `fedit client join`).
   */
  async join(token: Uint8Array, displayName = 'peer', { ready = true } = {}): Promise<this> {
    const ack = await this.enrol(token, displayName);
    if (!ack.ok) throw new Error(`enrol refused: ${JSON.stringify(ack.error)}`);
    if (ready) await this.ready();
    return this;
  }

  /** Says whether this participant can train now ('participant:ready'), failing on a refusal. */
  async ready(ready = true, reason?: string): Promise<Ack> {
    const ack = await this.request('participant:ready', { ready, ...(reason !== undefined && { reason }) });
    if (!ack.ok) throw new Error(`participant:ready refused: ${JSON.stringify(ack.error)}`);
    return ack;
  }

  /** Reconnects with the same identity and proves it; then says it is ready unless `ready` is false. */
  async reconnect(target: Target = this.target, { ready = true } = {}): Promise<Peer> {
    this.close();
    const peer = await Peer.connect(target, this.identity);
    const ack = await peer.prove();
    if (!ack.ok) throw new Error(`auth:prove refused: ${JSON.stringify(ack.error)}`);
    if (ready) await peer.ready();
    return peer;
  }

  /** The announcement of round `round` (already received or to come). */
  roundOpen(round: number): Promise<RoundOpen> {
    return this.#until(
      () => this.opens.find((o) => o.round === round),
      () => `round:open ${round}`,
    );
  }

  roundClosed(round: number): Promise<RoundClosed> {
    return this.#until(
      () => this.closes.find((c) => c.round === round),
      () => `round:closed ${round}`,
    );
  }

  /** The announcement that the federation ran all its rounds (already received or to come). */
  federationFinished(): Promise<FederationFinished> {
    return this.#until(
      () => this.finishes[0],
      () => 'federation:finished',
    );
  }

  /** The global adapter `hash`, downloaded with 'adapter:get' and checked. */
  async adapter(hash: ContentHash): Promise<Map<string, Tensor>> {
    const parts: Uint8Array[] = [];
    for (let index = 0, total = 1; index < total; index++) {
      const ack = await this.request('adapter:get', { hash, index });
      if (!ack.ok) throw new Error(`adapter:get refused: ${JSON.stringify(ack.error)}`);
      parts.push(ack.data as Uint8Array);
      total = ack.total as number;
    }
    return parseSafetensors(Buffer.concat(parts), `adapter ${hash}`).tensors;
  }

  /** An update for `open`, built from the global adapter the round announces. */
  async update(open: RoundOpen, options: UpdateOptions = {}): Promise<Update> {
    return buildUpdate(this, open, await this.adapter(open.globalAdapterHash), options);
  }

  /**
   * Uploads `update` as an honest participant does (the shared upload sequence): begin, the chunks
   * from where the coordinator says to resume up to `stopBefore` (default: all), then commit
   * (unless stopped early, when the answer is begin's). A refusal is returned as it arrived.
   */
  async upload(update: Update, stopBefore = update.envelope.chunkCount): Promise<Ack> {
    const request = (event: UploadEvent, payload: unknown) => this.request(event, payload);
    const outcome = await uploadPass(request as UploadRequest, update, { stopBefore });
    if (outcome.kind === 'refused') return { ok: false, error: outcome.error };
    if (outcome.kind === 'paused') return { ok: true, ...outcome.begin };
    return { ok: true, ...outcome.commit };
  }

  close(): void {
    this.socket.close();
  }

  #until<T>(find: () => T | undefined, what: () => string): Promise<T> {
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return withinLimit(
      new Promise<T>((resolve) => {
        const check = () => {
          const value = find();
          if (value === undefined) this.#listeners.push(check);
          else resolve(value);
        };
        this.#listeners.push(check);
      }),
      () => `${what()} at participant ${this.id.slice(0, 8)}`,
    );
  }
}

// ---- updates -------------------------------------------------------------------------------------

export interface UpdateOptions {
  exampleCount?: number;
  /** Plaintext bytes per chunk (default 1 KiB: an update of the tiny model makes several chunks). */
  chunkBytes?: number;
  /** The trained values of each tensor (default: the global values plus 1e-3). */
  values?: (name: string, global: Float32Array) => Float32Array;
  /** Replaces the tensors that are serialised (and announced), e.g. to rename or reshape one. */
  tensors?: (tensors: Map<string, Tensor>) => Map<string, Tensor>;
  /** Fields changed before signing (the envelope is still validly signed). */
  envelope?: Partial<UpdateEnvelope>;
}

export interface Update {
  envelope: SignedEnvelope;
  payload: Uint8Array;
  id: ContentHash;
  key: UploadKey;
  /** The 'update:chunk' payload of chunk `index`, sealed as an honest participant seals it. */
  chunk(index: number): { uploadId: ContentHash; index: number; data: Uint8Array; sha256: Uint8Array };
}

const utf8 = new TextEncoder();
const byUtf8 = (a: string, b: string) => Buffer.compare(utf8.encode(a), utf8.encode(b));

export function buildUpdate(
  peer: Peer,
  open: RoundOpen,
  global: Map<string, Tensor>,
  options: UpdateOptions = {},
): Update {
  const values = options.values ?? ((_, g) => g.map((v) => v + 1e-3));
  let tensors = new Map<string, Tensor>();
  for (const [name, t] of global) tensors.set(name, tensorFromF32(t.shape, values(name, tensorToF32(t))));
  if (options.tensors) tensors = options.tensors(tensors);
  const names = [...tensors.keys()].sort(byUtf8);
  const sorted = new Map(names.map((n) => [n, tensors.get(n)!]));
  const payload = serializeSafetensors(sorted);
  const chunkBytes = options.chunkBytes ?? 1024;
  const unsigned: UpdateEnvelope = {
    version: 1,
    federation: peer.target.federation,
    round: open.round,
    participant: peer.identity.sign.publicKey,
    globalAdapterHash: open.globalAdapterHash,
    exampleCount: options.exampleCount ?? 10,
    tensorSchema: names.map((name) => ({ name, shape: [...sorted.get(name)!.shape], dtype: 'F32' })),
    payloadHash: sha256Hash(payload),
    payloadBytes: payload.byteLength,
    chunkBytes,
    chunkCount: chunkCountFor(payload.byteLength, chunkBytes),
    createdAt: Date.now(),
    ...options.envelope,
  };
  const envelope = signEnvelope(unsigned, peer.identity);
  return withEnvelope(peer, envelope, payload);
}

/** The upload of `payload` under `envelope` (sealed with `peer`'s keys). */
export function withEnvelope(peer: Peer, envelope: SignedEnvelope, payload: Uint8Array): Update {
  const id = envelopeId(envelope);
  const upload = sealedUpload(envelope, payload, peer.identity.box, peer.target.coordinator.box);
  return { ...upload, id, chunk: (index) => sealedChunkMessage(upload, id, index) };
}

/**
 * Signs `envelope` exactly as given (signEnvelope validates first and would refuse to sign what a
 * malicious peer sends). Fields the canonical digest cannot encode get an arbitrary signature.
 */
export function signRaw(peer: Peer, envelope: Record<string, unknown>): Record<string, unknown> {
  let signature: Uint8Array;
  try {
    signature = signDigest(
      peer.identity.sign.secretKey,
      DOMAINS.envelope,
      envelopeDigest(envelope as unknown as UpdateEnvelope),
    );
  } catch {
    signature = new Uint8Array(64).fill(7);
  }
  return { ...envelope, signature };
}
