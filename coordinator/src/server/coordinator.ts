// The running coordinator: a socket.io server (msgpackr codec) that authenticates participants,
// enrols them with invites, runs FedIT rounds and writes every decision to the signed round log.
//
// Every payload is validated (shared/protocol/validate.ts) before it touches any state; a bad one
// gets an error naming the field and the connection stays up; nothing stored is changed by it.
// A round is: select (seeded, re-derivable from the log) -> announce -> receive sealed updates ->
// close when every selected participant has committed or at the deadline -> aggregate in canonical
// order -> store the new global adapter -> append round-closed -> broadcast. A coordinator that
// restarts with a round open aborts it visibly (round-aborted) and opens the next one: no round is
// ever applied twice.

import { createServer, type Server as HttpServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Server, type Socket } from 'socket.io';
import {
  AuthChallenge,
  BlobStore,
  CLIENT_EVENTS,
  FeditError,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  RoundLog,
  aggregateContributions,
  aggregationRule,
  ackError,
  canonicalPayloadHash,
  configHash,
  recordEnvelope,
  checkChunkAgainstEnvelope,
  coordinatorUploadKey,
  fingerprint,
  fractionString,
  msgpackParser,
  openChunk,
  parseSafetensors,
  selectParticipants,
  tensorToF32,
  tensorsFromValues,
  toHex,
  fromHex,
  updateNorm,
  validateClientPayload,
  verifyAuthProof,
  verifyEnrolment,
  verifyEnvelope,
  type AuthContext,
  type ClientToServerEvents,
  type CountedUpdate,
  type DroppedParticipant,
  type FederationConfig,
  type RoundOpenBody,
  type RoundRecord,
  type ServerToClientEvents,
  type SignedEnvelope,
  type Tensor,
  type UploadKey,
} from '@fedit/shared';
import { CoordinatorIndex } from '../store/index-db.ts';
import { redeemInvite } from '../federation/invites.ts';
import {
  checkConfigMatchesLog,
  openFederationDir,
  readFederationLog,
  staleUploadDirs,
} from '../federation/dir.ts';
import { lockFederation } from '../federation/lock.ts';
import { profile, profiledParser, startTimer, timed } from './profile.ts';

/** Bytes of the adapter file per 'adapter:get' chunk. */
const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;

export type CoordinatorEvent =
  | { type: 'listening'; url: string }
  | { type: 'enrolled'; participant: string; displayName: string }
  | { type: 'connected' | 'disconnected'; participant: string }
  | { type: 'round-open'; round: number; selected: string[] }
  | { type: 'update-counted'; round: number; participant: string; exampleCount: number }
  | { type: 'update-refused'; round: number; participant: string; reason: string }
  | { type: 'round-closed'; round: number; adapter: string; updates: number; dropped: DroppedParticipant[] }
  | { type: 'round-aborted'; round: number; reason: string }
  | { type: 'finished'; rounds: number }
  | { type: 'recovered'; abortedRound: number };

export interface CoordinatorOptions {
  dir: string;
  host?: string;
  port?: number;
  onEvent?: (e: CoordinatorEvent) => void;
  /** Don't run rounds (serve enrolment and downloads only). */
  noRounds?: boolean;
  /** Turn on the hot-path timers of ./profile.ts (as FEDIT_PROFILE=1 does). */
  profile?: boolean;
}

interface SocketState {
  challenge: AuthChallenge;
  participant?: string;
}

interface Upload {
  id: string;
  round: number;
  participant: string;
  envelope: SignedEnvelope;
  key: UploadKey;
  dir: string;
  received: Set<number>;
}

interface OpenRound {
  round: number;
  body: RoundOpenBody;
  selected: Set<string>;
  counted: Map<string, CountedUpdate>;
  dropped: DroppedParticipant[];
  metrics: Map<string, number>;
  schema: Map<string, number[]>;
  global: Map<string, Float32Array>;
  done: () => void;
  finished: Promise<void>;
}

type FeditSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketState>;

export class RefusedError extends FeditError {
  constructor(
    code: string,
    message: string,
    readonly field?: string,
  ) {
    super(code, message);
  }
}

export interface RunningCoordinator {
  url: string;
  config: FederationConfig;
  /** Resolves when every configured round has ended (completed) or the coordinator is closed. */
  finished: Promise<{ completed: boolean }>;
  close(): Promise<void>;
}

/** Every global adapter the log names: the initial one (config records) and each round's result. */
function globalAdapters(records: readonly RoundRecord[]): Set<string> {
  const out = new Set<string>();
  for (const r of records) {
    if (r.kind === 'config' && r.body.globalAdapter !== undefined) out.add(r.body.globalAdapter);
    if (r.kind === 'round-closed') out.add(r.body.globalAdapterOut);
  }
  return out;
}

export async function startCoordinator(o: CoordinatorOptions): Promise<RunningCoordinator> {
  openFederationDir(o.dir); // a missing or damaged folder is named before anything is written
  // The round log has one writer: a second coordinator, or a revocation, waits for this one to stop.
  const lock = lockFederation(o.dir, 'coordinator');
  try {
    const running = await runCoordinator(o);
    return {
      ...running,
      async close() {
        try {
          await running.close();
        } finally {
          lock.release();
        }
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function runCoordinator(o: CoordinatorOptions): Promise<RunningCoordinator> {
  if (o.profile) profile.enabled = true;
  const fed = openFederationDir(o.dir);
  const { config, identity, paths } = fed;
  const emit = (e: CoordinatorEvent) => o.onEvent?.(e);
  // Read (a torn last line is left out) and compared before the log is opened for appending, so
  // an edited federation.json is named field by field, its id included, and nothing is written.
  const logRecords = await readFederationLog(paths);
  checkConfigMatchesLog(config, logRecords, paths.config);
  const log = await RoundLog.open(paths.log, {
    federation: config.id,
    coordinatorSecretKey: identity.sign.secretKey,
  });
  const index = await CoordinatorIndex.open(paths.index, logRecords);
  // What 'adapter:get' may serve: the global adapters the log names, never a counted update (those
  // are stored decrypted in the same blob store, and are one participant's training signal).
  const servable = globalAdapters(logRecords);
  const blobs = new BlobStore(paths.blobs);
  const rule = aggregationRule(config.aggregation.rule);
  const hashOfConfig = configHash(config);
  const ruleRef = { name: rule.name, config: {} };

  // A round left open by a crash is aborted, visibly, before anything else happens.
  const stale = log.state.openRound;
  if (stale) {
    const record = await log.append({
      kind: 'round-aborted',
      body: {
        reason: 'the coordinator restarted while the round was open; its uploads were discarded',
        dropped: [],
      },
    });
    index.apply(record);
    emit({ type: 'recovered', abortedRound: stale.round });
  }
  for (const d of staleUploadDirs(paths)) rmSync(d, { recursive: true, force: true });
  await index.save();

  const http: HttpServer = createServer();
  const io = new Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketState>(
    http,
    {
      parser: profile.enabled ? profiledParser : msgpackParser,
      maxHttpBufferSize: MAX_FRAME_BYTES,
      // long uploads must not trip the heartbeat
      pingTimeout: 60_000,
      serveClient: false,
    },
  );
  const sockets = new Map<string, FeditSocket>(); // participant id -> its current socket
  const uploads = new Map<string, Upload>();
  let current: OpenRound | undefined;
  let commitQueue: Promise<unknown> = Promise.resolve();
  let closing = false;
  let wake: (() => void) | undefined;
  const nudge = () => wake?.();

  const enrolling = new Set<string>(); // signing keys (hex) whose enrol record is being appended
  const participantBySignKey = (signKey: Uint8Array) =>
    Object.values(index.data.participants).find((p) => p.signKey === toHex(signKey));

  const announce = (socket: FeditSocket | typeof io) => {
    if (!current) return;
    socket.emit('round:open', {
      round: current.round,
      selected: [...current.selected],
      globalAdapterHash: current.body.globalAdapter as `sha256:${string}`,
      configHash: hashOfConfig as `sha256:${string}`,
      deadline: Date.parse(current.body.deadline),
      training: {
        steps: config.training.localSteps,
        learningRate: config.training.lr,
        batchSize: config.training.batchSize,
        seed: current.round,
      },
    });
  };

  const authenticate = (socket: FeditSocket, participant: string) => {
    const previous = sockets.get(participant);
    if (previous && previous.id !== socket.id) previous.disconnect(true);
    socket.data.participant = participant;
    sockets.set(participant, socket);
    void socket.join('participants');
    emit({ type: 'connected', participant });
    announce(socket);
    nudge();
  };

  const requireAuth = (socket: FeditSocket): string => {
    if (!socket.data.participant)
      throw new RefusedError('AUTH_REQUIRED', 'authenticate first (answer auth:hello with auth:prove)');
    return socket.data.participant;
  };

  // A participant whose update was refused at commit is dropped for the rest of the round: a later
  // update of theirs would make the round-closed record list them as both dropped and counted,
  // which the log refuses to append (and the round could not close).
  const refuseIfDropped = (round: OpenRound, participant: string, field: string) => {
    const dropped = round.dropped.find((d) => d.participant === participant);
    if (dropped)
      throw new RefusedError(
        'UPDATE_DROPPED',
        `this participant's update was refused in round ${round.round} (${dropped.reason}); it can take part again from the next round`,
        field,
      );
  };

  // The round ends early once every selected participant is counted or dropped. Deferred a tick so
  // the last participant's acknowledgement goes out before the round starts closing.
  const settle = (round: OpenRound) => {
    if (
      [...round.selected].every((s) => round.counted.has(s) || round.dropped.some((d) => d.participant === s))
    )
      setImmediate(round.done);
  };

  // One wrapper for every event: validate, run, answer; errors become a named refusal, never a crash.
  function handle<E extends keyof ClientToServerEvents>(
    socket: FeditSocket,
    event: E,
    run: (payload: Parameters<ClientToServerEvents[E]>[0]) => Promise<object> | object,
  ) {
    // socket.io's typed `on` cannot see through the generic E; the validator below does the typing
    (socket.on as (ev: string, listener: (payload: unknown, ack: unknown) => void) => void)(
      event,
      async (payload: unknown, ack: unknown) => {
        if (typeof ack !== 'function') {
          socket.emit('error', {
            code: 'PROTOCOL_ACK',
            message: `${event} needs an acknowledgement callback`,
          });
          return;
        }
        try {
          const valid = timed('validate', () => validateClientPayload(event, payload)) as Parameters<
            ClientToServerEvents[E]
          >[0];
          (ack as (r: object) => void)({ ok: true, ...(await run(valid)) });
        } catch (err) {
          if (!(err instanceof FeditError)) console.error(`fedit coordinator: ${event} failed:`, err);
          (ack as (r: object) => void)(ackError(err));
        }
      },
    );
  }

  io.on('connection', (raw) => {
    const socket = raw as FeditSocket;
    socket.data.challenge = new AuthChallenge({
      federation: config.id,
      coordinator: identity.sign.publicKey,
    });
    socket.emit('auth:hello', {
      protocol: PROTOCOL_VERSION,
      federation: config.id,
      nonce: socket.data.challenge.nonce,
    });
    const context = (): AuthContext => socket.data.challenge.consume();

    handle(socket, 'auth:prove', (p) => {
      const ctx = context();
      if (
        !timed('crypto.verify', () =>
          verifyAuthProof(ctx, { participant: p.participant, signature: p.signature }),
        )
      ) {
        throw new RefusedError(
          'AUTH_FAILED',
          'the signature does not prove this identity for this connection',
          'payload.signature',
        );
      }
      const entry = participantBySignKey(p.participant);
      if (!entry)
        throw new RefusedError(
          'AUTH_UNKNOWN',
          'this identity is not enrolled in the federation; join with an invite first',
          'payload.participant',
        );
      if (entry.revoked)
        throw new RefusedError(
          'AUTH_REVOKED',
          `this participant was removed from the federation: ${entry.revoked.reason}`,
          'payload.participant',
        );
      authenticate(socket, entry.id);
      return { participantId: entry.id };
    });

    handle(socket, 'enrol', async (p) => {
      const ctx = context();
      timed('crypto.verify', () => verifyEnrolment(ctx, p));
      const id = fingerprint({ sign: p.identity.sign, box: p.identity.box });
      const existing = index.data.participants[id];
      if (existing) {
        if (existing.revoked)
          throw new RefusedError(
            'AUTH_REVOKED',
            `this identity was removed from the federation: ${existing.revoked.reason}`,
            'payload.identity.sign',
          );
        authenticate(socket, id);
        return { participantId: id };
      }
      // One enrolment per signing key: a revoked participant does not come back by pairing its
      // key with a new box key (and auth:prove, which finds participants by signing key, stays
      // unambiguous).
      const sameKey = participantBySignKey(p.identity.sign);
      if (sameKey)
        throw new RefusedError(
          sameKey.revoked ? 'AUTH_REVOKED' : 'ENROL_KEY_IN_USE',
          sameKey.revoked
            ? `this signing key was removed from the federation: ${sameKey.revoked.reason}`
            : `this signing key is already enrolled as participant ${sameKey.id}`,
          'payload.identity.sign',
        );
      // The enrolment is two writes: the invite's "used" line (durable first, so an invite can
      // never enrol two keys) and then the enrol record. A crash or a failed append between them
      // leaves the invite used by nobody enrolled; redeemInvite lets the same participant redeem
      // it again, so the retry finishes the enrolment. While one enrolment of a key awaits its
      // append, a second of the same key (a client retrying) would pass every check above and
      // append a second enrol record: it is refused until the first has finished.
      const signKey = toHex(p.identity.sign);
      if (enrolling.has(signKey))
        throw new RefusedError(
          'ENROL_IN_PROGRESS',
          'an enrolment of this signing key is in progress; try again in a moment',
          'payload.identity.sign',
        );
      redeemInvite(o.dir, p.token, id, (code, message) => {
        throw new RefusedError(code, message, 'payload.token');
      });
      enrolling.add(signKey);
      try {
        const record = await log.append({
          kind: 'enrol',
          body: {
            participant: id,
            publicKey: signKey,
            boxKey: toHex(p.identity.box),
            displayName: p.displayName,
          } as never,
        });
        // The log is the truth and the index is rebuilt from it at start: once the record is
        // appended the participant is enrolled, even if saving the index fails.
        index.apply(record);
      } finally {
        enrolling.delete(signKey);
      }
      await index.save();
      emit({ type: 'enrolled', participant: id, displayName: p.displayName });
      authenticate(socket, id);
      return { participantId: id };
    });

    handle(socket, 'federation:info', () => ({ config: JSON.stringify(config), configHash: hashOfConfig }));

    handle(socket, 'adapter:get', (p) => {
      requireAuth(socket);
      // Anything but a global adapter gets the same answer as a hash that is not stored at all, so
      // a participant cannot even learn that another's update exists.
      // Only the requested chunk is read (a ranged read), so however often a peer asks, each
      // request costs at most one chunk of disk reading and memory, whatever the adapter's size.
      const size = servable.has(p.hash) ? blobs.size(p.hash) : undefined;
      if (size === undefined)
        throw new RefusedError('ADAPTER_UNKNOWN', `no global adapter ${p.hash} here`, 'payload.hash');
      const total = Math.max(1, Math.ceil(size / DOWNLOAD_CHUNK_BYTES));
      if (p.index >= total)
        throw new RefusedError(
          'PROTOCOL_RANGE',
          `payload.index is ${p.index}, but the adapter has ${total} chunks`,
          'payload.index',
        );
      const data = timed('adapter.serve', () =>
        blobs.readRange(p.hash, p.index * DOWNLOAD_CHUNK_BYTES, DOWNLOAD_CHUNK_BYTES),
      );
      if (!data)
        throw new RefusedError('ADAPTER_UNKNOWN', `no global adapter ${p.hash} here`, 'payload.hash');
      return { data, total };
    });

    handle(socket, 'update:begin', (p) => {
      const participant = requireAuth(socket);
      const { envelope, digest, id } = timed('crypto.verify', () => verifyEnvelope(p.envelope));
      const entry = index.data.participants[participant];
      if (toHex(envelope.participant) !== entry.signKey)
        throw new RefusedError(
          'UPDATE_PARTICIPANT',
          'envelope.participant is not the key this connection authenticated with',
          'envelope.participant',
        );
      if (envelope.federation !== config.id)
        throw new RefusedError(
          'UPDATE_FEDERATION',
          `envelope.federation is ${envelope.federation}, this is ${config.id}`,
          'envelope.federation',
        );
      if (!current || envelope.round !== current.round)
        throw new RefusedError(
          'ROUND_CLOSED',
          `round ${envelope.round} is not open${current ? ` (round ${current.round} is)` : ''}`,
          'envelope.round',
        );
      if (!current.selected.has(participant))
        throw new RefusedError(
          'UPDATE_NOT_SELECTED',
          `this participant was not selected for round ${current.round}`,
          'envelope.round',
        );
      if (envelope.globalAdapterHash !== current.body.globalAdapter)
        throw new RefusedError(
          'UPDATE_STALE',
          'envelope.globalAdapterHash is not the adapter this round trains from',
          'envelope.globalAdapterHash',
        );
      if (envelope.exampleCount > config.limits.maxExampleCount)
        throw new RefusedError(
          'UPDATE_EXAMPLES',
          `envelope.exampleCount ${envelope.exampleCount} is above the federation's limit ${config.limits.maxExampleCount}`,
          'envelope.exampleCount',
        );
      if (envelope.payloadBytes > config.limits.maxUploadBytes)
        throw new RefusedError(
          'UPDATE_TOO_LARGE',
          `the update is ${envelope.payloadBytes} bytes, above the limit of ${config.limits.maxUploadBytes}`,
          'envelope.payloadBytes',
        );
      if (log.state.hasEnvelope(id) || [...current.counted.values()].some((u) => u.envelopeDigest === id))
        throw new RefusedError('UPDATE_REPLAY', 'this envelope was already counted', 'envelope');
      if (current.counted.has(participant))
        throw new RefusedError(
          'UPDATE_DUPLICATE',
          `an update of this participant is already counted in round ${current.round}`,
          'envelope',
        );
      refuseIfDropped(current, participant, 'envelope');
      const names = envelope.tensorSchema.map((t) => t.name);
      const expected = [...current.schema.keys()].sort();
      if (names.length !== expected.length || names.some((n, i) => n !== expected[i])) {
        const extra = names.find((n) => !current!.schema.has(n));
        throw new RefusedError(
          'UPDATE_SCHEMA',
          extra
            ? `envelope.tensorSchema has ${extra}, which the global adapter does not`
            : 'envelope.tensorSchema lacks tensors of the global adapter',
          'envelope.tensorSchema',
        );
      }
      for (const t of envelope.tensorSchema) {
        if (t.shape.join(',') !== current.schema.get(t.name)!.join(','))
          throw new RefusedError(
            'UPDATE_SCHEMA',
            `envelope.tensorSchema: ${t.name} has shape [${t.shape}], the global adapter's is [${current.schema.get(t.name)}]`,
            'envelope.tensorSchema',
          );
      }
      let upload = uploads.get(id);
      if (!upload) {
        // One upload in progress per participant and round: otherwise one participant could open
        // any number of envelopes, each up to limits.maxUploadBytes, and fill the disk. A new
        // envelope replaces the previous one (its chunks deleted) rather than being refused: an
        // honest client whose kept upload was lost or damaged trains again and signs a new
        // envelope, and must not be locked out of the round by its own half-sent one. Resuming
        // (the same envelope again) finds the upload above and keeps its chunks.
        for (const [otherId, other] of uploads) {
          if (other.participant === participant && other.round === current.round) {
            uploads.delete(otherId);
            rmSync(other.dir, { recursive: true, force: true });
          }
        }
        const dir = join(paths.uploads, String(current.round), id.slice(7));
        mkdirSync(dir, { recursive: true });
        upload = {
          id,
          round: current.round,
          participant,
          envelope,
          key: coordinatorUploadKey(
            identity.box,
            fromHex(entry.boxKey, 'boxKey', 32),
            digest,
            envelope.chunkCount,
          ),
          dir,
          received: new Set(),
        };
        uploads.set(id, upload);
      }
      let resumeFrom = 0;
      while (upload.received.has(resumeFrom)) resumeFrom++;
      return { uploadId: id, resumeFrom };
    });

    handle(socket, 'update:chunk', (p) => {
      const participant = requireAuth(socket);
      const upload = uploads.get(p.uploadId);
      if (!upload || upload.participant !== participant)
        throw new RefusedError(
          'UPLOAD_UNKNOWN',
          'no such upload for this participant; start with update:begin',
          'payload.uploadId',
        );
      if (!current || upload.round !== current.round)
        throw new RefusedError('ROUND_CLOSED', `round ${upload.round} is over`, 'payload.uploadId');
      checkChunkAgainstEnvelope(upload.envelope, p);
      const sha = timed('crypto.hash', () => createHash('sha256').update(p.data).digest());
      if (!Buffer.from(sha).equals(Buffer.from(p.sha256))) {
        throw new RefusedError(
          'CHUNK_CORRUPT',
          'payload.sha256 does not match payload.data: the chunk was damaged in transit; send it again',
          'payload.data',
        );
      }
      const plain = timed('crypto.open', () => {
        try {
          return openChunk(upload.key, p.index, p.data);
        } catch (err) {
          // openChunk's error names "chunk i"; the peer is told the field of its message at fault.
          if (err instanceof FeditError) throw new RefusedError(err.code, err.message, 'payload.data');
          throw err;
        }
      });
      timed('upload.disk', () => writeFileSync(join(upload.dir, String(p.index)), plain));
      upload.received.add(p.index);
      return { received: upload.received.size };
    });

    // Commits run one at a time: each holds a whole update in memory (payload, tensors, float32
    // copies) while its blob is written and fsynced, so letting a burst of them overlap makes the
    // coordinator's memory grow with the number of participants (10 MB each, measured by
    // `npm run bench -- federation`) instead of staying O(adapter size).
    handle(socket, 'update:commit', (p) => {
      const run = commitQueue.then(() => commit(p));
      commitQueue = run.catch(() => {});
      return run;
    });

    const commit = async (p: { uploadId: string }) => {
      const participant = requireAuth(socket);
      const upload = uploads.get(p.uploadId);
      if (!upload || upload.participant !== participant)
        throw new RefusedError('UPLOAD_UNKNOWN', 'no such upload for this participant', 'payload.uploadId');
      const round = current;
      if (!round || upload.round !== round.round)
        throw new RefusedError('ROUND_CLOSED', `round ${upload.round} is over`, 'payload.uploadId');
      refuseIfDropped(round, participant, 'payload.uploadId');
      // Commits run one at a time, so this also catches an upload begun while the participant's
      // previous one was being committed: the first to commit counts, the other is refused.
      if (round.counted.has(participant))
        throw new RefusedError(
          'UPDATE_DUPLICATE',
          `an update of this participant is already counted in round ${round.round}`,
          'payload.uploadId',
        );
      const { envelope } = upload;
      if (upload.received.size !== envelope.chunkCount)
        throw new RefusedError(
          'UPLOAD_INCOMPLETE',
          `${envelope.chunkCount - upload.received.size} of ${envelope.chunkCount} chunks are missing`,
          'payload.uploadId',
        );
      const payload = timed('upload.disk', () =>
        Buffer.concat(
          Array.from({ length: envelope.chunkCount }, (_, i) => readFileSync(join(upload.dir, String(i)))),
        ),
      );
      const refuse = (code: string, reason: string): never => {
        round.dropped.push({ participant, reason });
        uploads.delete(upload.id);
        rmSync(upload.dir, { recursive: true, force: true });
        emit({ type: 'update-refused', round: round.round, participant, reason });
        settle(round);
        throw new RefusedError(code, reason, 'payload');
      };
      if (
        payload.length !== envelope.payloadBytes ||
        `sha256:${timed('crypto.hash', () => createHash('sha256').update(payload).digest('hex'))}` !==
          envelope.payloadHash
      ) {
        refuse('UPDATE_PAYLOAD', 'the assembled update does not match envelope.payloadHash');
      }
      const stopCheck = startTimer('update.check');
      let tensors: Map<string, Tensor>;
      try {
        tensors = parseSafetensors(new Uint8Array(payload), `update of ${participant}`).tensors;
      } catch (err) {
        return refuse(
          'UPDATE_FORMAT',
          `the update is not a valid safetensors file: ${(err as Error).message}`,
        );
      }
      const update = new Map<string, Float32Array>();
      for (const spec of envelope.tensorSchema) {
        const t = tensors.get(spec.name);
        if (!t || t.shape.join(',') !== spec.shape.join(',') || t.dtype !== spec.dtype)
          refuse('UPDATE_SCHEMA', `tensor ${spec.name} differs from the envelope's schema`);
        const values = tensorToF32(t!);
        let bad = -1;
        for (let k = 0; k < values.length; k++) {
          if (!Number.isFinite(values[k])) {
            bad = k;
            break;
          }
        }
        if (bad >= 0)
          refuse('UPDATE_NOT_FINITE', `tensor ${spec.name} has a non-finite value at index ${bad}`);
        update.set(spec.name, values);
      }
      if (tensors.size !== envelope.tensorSchema.length)
        refuse('UPDATE_SCHEMA', 'the update has tensors the envelope does not announce');
      const norm = updateNorm(update, round.global);
      if (!(norm <= config.limits.maxUpdateNorm))
        refuse(
          'UPDATE_NORM',
          `the update moves the adapter by ${norm.toFixed(3)} (L2), above the federation's bound ${config.limits.maxUpdateNorm}`,
        );
      // The blob store keeps the canonical safetensors file of the tensors, and the audit checks
      // the participant's signed payloadHash against exactly that file: refuse any other layout.
      if (timed('crypto.hash', () => canonicalPayloadHash(tensors).hash) !== envelope.payloadHash)
        refuse(
          'UPDATE_FORMAT',
          'the update is not a canonical safetensors file (names ascending, no metadata)',
        );
      stopCheck();
      const stopStore = startTimer('update.store'); // the synchronous part: hash and serialise
      const stored = blobs.put(tensors);
      stopStore();
      const updateHash = await stored;
      // The deadline may have closed the round while the blob was written: then it did not count,
      // and the participant must not be told it did.
      if (current !== round) {
        throw new RefusedError(
          'ROUND_CLOSED',
          `round ${round.round} closed before this update was stored`,
          'payload.uploadId',
        );
      }
      round.counted.set(participant, {
        participant,
        envelopeDigest: upload.id,
        exampleCount: envelope.exampleCount,
        updateHash,
        envelope: recordEnvelope(envelope),
      });
      uploads.delete(upload.id);
      rmSync(upload.dir, { recursive: true, force: true });
      emit({ type: 'update-counted', round: round.round, participant, exampleCount: envelope.exampleCount });
      settle(round);
      return {};
    };

    // An event the protocol does not define is refused too, rather than left unanswered.
    socket.onAny((event: unknown, ...args: unknown[]) => {
      if ((CLIENT_EVENTS as readonly unknown[]).includes(event)) return;
      const refusal = ackError(
        new ProtocolError(
          'PROTOCOL_UNKNOWN_EVENT',
          'event',
          `event ${JSON.stringify(event)} is not a fedit client event`,
        ),
      );
      const ack = args.at(-1);
      if (typeof ack === 'function') (ack as (r: object) => void)(refusal);
      else if (!refusal.ok) socket.emit('error', refusal.error);
    });

    socket.on('disconnect', () => {
      const p = socket.data.participant;
      if (p && sockets.get(p)?.id === socket.id) {
        sockets.delete(p);
        emit({ type: 'disconnected', participant: p });
      }
    });
  });

  async function openRound(): Promise<OpenRound> {
    const roundNo = log.state.lastRound + 1;
    const eligible = log.state.eligibleParticipants();
    const seed = randomBytes(16).toString('hex');
    const selected = selectParticipants(
      seed,
      eligible,
      config.participantsPerRound.fraction,
      config.participantsPerRound.minimum,
    );
    const globalHash = log.state.globalAdapter!;
    const globalTensors = blobs.get(globalHash)!;
    const deadline = new Date(Date.now() + config.roundDeadlineSeconds * 1000).toISOString();
    const body: RoundOpenBody = {
      rule: ruleRef,
      selection: {
        seed,
        fraction: fractionString(config.participantsPerRound.fraction),
        minimum: config.participantsPerRound.minimum,
        selected,
      },
      globalAdapter: globalHash,
      deadline,
    };
    const record = await log.append({ kind: 'round-open', round: roundNo, body });
    index.apply(record);
    await index.save();
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const round: OpenRound = {
      round: roundNo,
      body,
      selected: new Set(selected),
      counted: new Map(),
      dropped: [],
      metrics: new Map(),
      schema: new Map([...globalTensors].map(([n, t]) => [n, t.shape])),
      global: new Map([...globalTensors].map(([n, t]) => [n, tensorToF32(t)])),
      done,
      finished,
    };
    emit({ type: 'round-open', round: roundNo, selected });
    return round;
  }

  async function closeRound(round: OpenRound): Promise<void> {
    for (const s of round.selected) {
      if (!round.counted.has(s) && !round.dropped.some((d) => d.participant === s)) {
        round.dropped.push({
          participant: s,
          reason: sockets.has(s)
            ? 'no update before the deadline'
            : 'disconnected, no update before the deadline',
        });
      }
    }
    for (const [id, u] of uploads) if (u.round === round.round) uploads.delete(id);
    rmSync(join(paths.uploads, String(round.round)), { recursive: true, force: true });
    const counted = [...round.counted.values()];
    if (counted.length < config.minUpdates) {
      const reason = `${counted.length} update(s) counted, fewer than the ${config.minUpdates} the federation requires`;
      const record = await log.append({
        kind: 'round-aborted',
        round: round.round,
        body: { reason, dropped: round.dropped },
      });
      index.apply(record);
      await index.save();
      io.to('participants').emit('round:closed', {
        round: round.round,
        outcome: 'aborted',
        adapterHash: round.body.globalAdapter as `sha256:${string}`,
        participants: 0,
      });
      emit({ type: 'round-aborted', round: round.round, reason });
      return;
    }
    const result = timed('aggregate', () =>
      aggregateContributions(
        rule.name,
        {},
        round.schema,
        counted.map((u) => ({
          participant: u.participant,
          exampleCount: u.exampleCount,
          update: () => timed('aggregate.load', () => blobs.getF32(u.updateHash)!),
        })),
      ),
    );
    const stopStore = startTimer('aggregate.store');
    const stored = blobs.put(tensorsFromValues(round.schema, result));
    stopStore();
    const out = await stored;
    const sorted = [...counted].sort((a, b) =>
      a.participant < b.participant ? -1 : a.participant > b.participant ? 1 : 0,
    );
    const record = await log.append({
      kind: 'round-closed',
      round: round.round,
      body: {
        rule: ruleRef,
        selection: round.body.selection,
        updates: sorted,
        globalAdapterIn: round.body.globalAdapter,
        globalAdapterOut: out,
        dropped: round.dropped,
        metrics: { updates: counted.length, examples: counted.reduce((s, u) => s + u.exampleCount, 0) },
      },
    });
    index.apply(record);
    servable.add(out); // served from the moment the log names it
    await index.save();
    io.to('participants').emit('round:closed', {
      round: round.round,
      outcome: 'aggregated',
      adapterHash: out as `sha256:${string}`,
      participants: counted.length,
    });
    emit({
      type: 'round-closed',
      round: round.round,
      adapter: out,
      updates: counted.length,
      dropped: round.dropped,
    });
  }

  const connectedEligible = () => log.state.eligibleParticipants().filter((p) => sockets.has(p)).length;

  async function runRounds(): Promise<{ completed: boolean }> {
    // `rounds` counts rounds opened, aborted ones included (docs/federation.md): a federation whose
    // participants vanish still ends, rather than reopening rounds forever.
    while (!closing && log.state.lastRound < config.rounds) {
      // Open a round once enough enrolled participants are online to reach the minimum.
      while (!closing && connectedEligible() < config.participantsPerRound.minimum) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 1000);
        });
      }
      if (closing) return { completed: false };
      current = await openRound();
      announce(io.to('participants') as unknown as typeof io);
      const timer = setTimeout(current.done, Math.max(0, Date.parse(current.body.deadline) - Date.now()));
      await current.finished;
      clearTimeout(timer);
      const round = current;
      current = undefined;
      if (closing) return { completed: false };
      await closeRound(round);
    }
    if (closing) return { completed: false };
    emit({ type: 'finished', rounds: log.state.lastRound });
    return { completed: true };
  }

  // A port in use is the operator's to fix: a named error, not an unhandled 'error' event.
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  }).catch(async (err: NodeJS.ErrnoException) => {
    io.close();
    await log.close();
    throw new FeditError(
      'COORDINATOR_LISTEN',
      `cannot listen on ${o.host ?? '127.0.0.1'}:${o.port ?? 0}: ${err.code === 'EADDRINUSE' ? 'the address is in use (another coordinator, or another program)' : err.message}`,
    );
  });
  const address = http.address() as AddressInfo;
  const url = `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
  emit({ type: 'listening', url });
  const finished = o.noRounds ? new Promise<{ completed: boolean }>(() => {}) : runRounds();

  return {
    url,
    config,
    finished,
    async close() {
      closing = true;
      current?.done();
      nudge();
      io.close();
      await new Promise<void>((r) => http.close(() => r()));
      await log.close();
      await index.save();
    },
  };
}
