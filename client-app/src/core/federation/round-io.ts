// A round's traffic with the coordinator: fetching the global adapter the round starts from, and
// sending the update. Both outlive dropped connections: a request that fails for want of a
// connection waits until the connection is authenticated again and is tried again, until the
// round's task stops or its deadline has long passed. The upload itself is the shared sequence
// (shared/src/protocol/upload.ts); what is here is the participant's policy around it.
import type { EventEmitter } from 'node:events';
import {
  sealedUpload,
  type ClientEventName,
  type ClientPayload,
  uploadPass,
  type ContentHash,
  type RoundOpen,
  type Tensor,
  type UploadAck,
  type UploadEvent,
  type UploadRequest,
} from '@fedit/shared';
import { cacheAdapter, downloadAdapter, readCachedAdapter, type AdapterChunkFetcher } from './adapters.ts';
import type { FederationConnection } from './connection.ts';
import { FederationError, isTransient } from './errors.ts';
import type { ParticipantEvents, StatusEvent } from './events.ts';
import type { ParticipantSession } from './session.ts';
import type { PendingUpload } from './update.ts';

/** Codes with which the coordinator says this update (or one of this participant's) is already counted. */
const ALREADY_COUNTED = new Set(['UPDATE_REPLAY', 'UPDATE_DUPLICATE']);
/** Chunks the coordinator may report damaged in transit, in a row, before the upload gives up. */
const MAX_CORRUPT_RETRIES = 5;
/** Pause before retrying after a dropped connection or an unanswered request. */
const RETRY_PAUSE_MS = 1000;
/** How long after a round's deadline an upload keeps trying (clocks differ; the coordinator decides). */
const DEADLINE_GRACE_MS = 60_000;

/**
 * What a round's requests and upload need: the session's connection, identity and membership, no
 * model (so a participant without one, the federation benchmark's, runs this same code).
 */
export interface RoundIOContext {
  session: Pick<ParticipantSession, 'connection' | 'identity' | 'membership'>;
  open: RoundOpen;
  /** Aborted when the task must stop: the round closed, a newer one opened, or the participant stops. */
  signal: AbortSignal;
  events: EventEmitter<ParticipantEvents>;
  setStatus(event: StatusEvent): void;
}

/** One round's task as its parts see it. */
export interface RoundContext extends RoundIOContext {
  session: ParticipantSession;
}

/**
 * The shared upload sequence's request function over a participant's connection. The connection
 * throws the coordinator's refusals as FederationErrors (remote), so only successes come back.
 */
export function connectionUploadRequest(connection: FederationConnection): UploadRequest {
  return async <E extends UploadEvent>(event: E, payload: ClientPayload<E>) =>
    ({ ok: true, ...(await connection.request(event, payload)) }) as UploadAck<E>;
}

/** Global adapter `hash` from the cache, or downloaded chunk by chunk with `fetchChunk` and cached. */
async function cachedAdapter(
  session: Pick<ParticipantSession, 'home'>,
  hash: ContentHash,
  fetchChunk: AdapterChunkFetcher,
  onChunk?: (done: number, total: number) => void,
): Promise<Map<string, Tensor>> {
  const cached = await readCachedAdapter(session.home, hash);
  if (cached) return cached;
  const { bytes, tensors } = await downloadAdapter(hash, fetchChunk, onChunk);
  await cacheAdapter(session.home, hash, bytes);
  return tensors;
}

/** Global adapter `hash` over the session's connection as it is now (no retrying): for the chat, and at the end. */
export function keepGlobalAdapter(
  session: Pick<ParticipantSession, 'home' | 'connection'>,
  hash: ContentHash,
): Promise<Map<string, Tensor>> {
  return cachedAdapter(session, hash, (h, index) =>
    session.connection.request('adapter:get', { hash: h, index }),
  );
}

/** Tries at fetching the final adapter over a connection that stays up (each unanswered in time). */
const FINAL_ADAPTER_ATTEMPTS = 3;

/**
 * The federation's final adapter, kept in the adapter cache: tried again while the connection
 * stays up (up to FINAL_ADAPTER_ATTEMPTS), each retry told to `warn`. False when the connection
 * dropped: the coordinator repeats 'federation:finished' after the next authentication.
 */
export async function keepFinalAdapter(
  session: Pick<ParticipantSession, 'home' | 'connection'>,
  hash: ContentHash,
  warn: (message: string) => void,
): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await keepGlobalAdapter(session, hash);
      return true;
    } catch (error) {
      if (!isTransient(error) || attempt === FINAL_ADAPTER_ATTEMPTS) throw error;
      if (session.connection.state !== 'ready') {
        warn(`${(error as Error).message}; fetching the final adapter once reconnected`);
        return false;
      }
      warn(`${(error as Error).message}; fetching the final adapter again`);
    }
  }
}

/** The global adapter the round starts from, fetched across dropped connections. */
export function fetchRoundAdapter(ctx: RoundContext): Promise<Map<string, Tensor>> {
  const { session, open } = ctx;
  return cachedAdapter(
    session,
    open.globalAdapterHash,
    (hash, index) => retrying(ctx, () => session.connection.request('adapter:get', { hash, index })),
    (done, total) => ctx.events.emit('progress', { round: open.round, phase: 'download', done, total }),
  );
}

/** A request of the round (a secure round's phases), retried across dropped connections. */
export function roundRequest<E extends ClientEventName>(
  ctx: RoundIOContext,
  event: E,
  payload: ClientPayload<E>,
) {
  return retrying(ctx, () => ctx.session.connection.request(event, payload));
}

/** SCAFFOLD: the server state holding c that the round announced, fetched like the adapter. */
export function fetchRoundControl(ctx: RoundContext): Promise<Map<string, Tensor>> {
  const { session, open } = ctx;
  return cachedAdapter(session, open.control!, (hash, index) =>
    retrying(ctx, () => session.connection.request('adapter:get', { hash, index })),
  );
}

/**
 * Sends `pending`: passes of the shared sequence (begin, sealed chunks from where the coordinator
 * says to resume, commit) until one commits. A dropped connection starts a new pass once
 * authenticated again; a chunk the coordinator reports damaged in transit is sent again.
 */
export async function uploadUpdate(
  ctx: RoundIOContext,
  pending: PendingUpload,
): Promise<'committed' | 'already-counted' | 'stopped'> {
  const { session, open, signal } = ctx;
  const coordinatorBox = session.membership.coordinator.box;
  const upload = sealedUpload(pending.envelope, pending.payload, session.identity.box, coordinatorBox);
  const request = connectionUploadRequest(session.connection);
  const total = pending.envelope.chunkCount;
  const onChunk = (index: number) =>
    ctx.events.emit('progress', { round: open.round, phase: 'upload', done: index + 1, total });
  let corrupt = 0;
  try {
    for (;;) {
      try {
        const pass = () => uploadPass(request, upload, { signal, onChunk });
        const outcome = await retrying(ctx, pass, 'resuming the upload');
        return outcome.kind === 'committed' ? 'committed' : 'stopped';
      } catch (error) {
        if (isDamagedInTransit(error) && ++corrupt <= MAX_CORRUPT_RETRIES) continue;
        throw error;
      }
    }
  } catch (error) {
    if (error instanceof FederationError && ALREADY_COUNTED.has(error.code)) return 'already-counted';
    if (signal.aborted && (isTransient(error) || (error as FederationError).code === 'PARTICIPANT_STOPPED')) {
      return 'stopped';
    }
    throw error;
  }
}

/**
 * Runs `request` until it succeeds, waiting for the connection to be authenticated again after
 * every transient failure. Gives up (a transient error) when the task stops, or when the round's
 * deadline has long passed.
 */
async function retrying<T>(
  ctx: RoundIOContext,
  request: () => Promise<T>,
  onRetry = 'trying again',
): Promise<T> {
  const { open, signal } = ctx;
  for (;;) {
    if (signal.aborted) throw stoppedError();
    if (Date.now() > open.deadline + DEADLINE_GRACE_MS) {
      throw new FederationError(
        'ROUND_CLOSED',
        `round ${open.round} passed its deadline (${new Date(open.deadline).toISOString()}) before the coordinator could be reached`,
      );
    }
    try {
      await ctx.session.connection.ready({ signal });
    } catch (error) {
      if (signal.aborted) throw stoppedError();
      throw error;
    }
    try {
      return await request();
    } catch (error) {
      if (!isTransient(error)) throw error;
      ctx.events.emit('warning', `${(error as Error).message}; ${onRetry}`);
      await pause(RETRY_PAUSE_MS, signal);
    }
  }
}

/** The coordinator says a chunk arrived damaged (its SHA-256 does not match): send it again. */
function isDamagedInTransit(error: unknown): boolean {
  if (!(error instanceof FederationError) || !error.remote) return false;
  return (
    error.code === 'CHUNK_CORRUPT' ||
    (error.code === 'PROTOCOL_INCONSISTENT' && error.field === 'payload.sha256')
  );
}

function stoppedError(): FederationError {
  return new FederationError('PARTICIPANT_STOPPED', 'the participant stopped', { transient: true });
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(stoppedError());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(stoppedError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
