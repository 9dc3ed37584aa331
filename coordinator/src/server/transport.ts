// The coordinator's edge: a socket.io server speaking fedit's MessagePack codec, a challenge per
// connection for authentication, and one table of handlers, one per client event, behind a single
// wrapper that validates every payload (shared/protocol/validate.ts) before a handler sees it and
// answers every request: the handler's result, or a refusal naming the code and the field. An
// event the protocol does not define is refused too, and a request without an acknowledgement is
// answered with an 'error' event, so no message is ever left unanswered or reaches state unchecked.
//
// Before a connection authenticates it is held to little: frames of at most
// PRE_AUTH_MAX_FRAME_BYTES (its decoder's limit, raised by allowFullFrames once it proves who it
// is), and the lifetime of its challenge (dropped when the challenge expires unauthenticated).
// Connections are capped in total and per address (connections.ts).

import type { Server as HttpServer } from 'node:http';
import { Server, type Namespace, type Socket } from 'socket.io';
import {
  AuthChallenge,
  CLIENT_EVENTS,
  AUTH_CHALLENGE_TTL_MS,
  Decoder,
  FeditError,
  MAX_FRAME_BYTES,
  PRE_AUTH_MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  unknownEvent,
  ackError,
  msgpackParser,
  validateClientPayload,
  type Ack,
  type ClientEventName,
  type ClientPayload,
  type ClientToServerEvents,
  type ServerToClientEvents,
} from '@fedit/shared';
import { ConnectionCaps, type ConnectionCapsOptions } from './connections.ts';
import { profile, profiledParser, timed } from './profile.ts';
import { setLongTimeout } from './timers.ts';

/** What the coordinator keeps per connection: its auth challenge, and who it proved to be. */
export interface SocketState {
  challenge: AuthChallenge;
  participant?: string;
}

export type FeditSocket = Socket<
  ClientToServerEvents,
  ServerToClientEvents,
  Record<string, never>,
  SocketState
>;
export type FeditServer = Server<
  ClientToServerEvents,
  ServerToClientEvents,
  Record<string, never>,
  SocketState
>;

/** One federation's namespace: '/' when the process serves one federation, '/<id>' for several. */
export type FeditNamespace = Namespace<
  ClientToServerEvents,
  ServerToClientEvents,
  Record<string, never>,
  SocketState
>;

/** The acknowledged fields of a successful answer to client event `E`. */
export type ClientResult<E extends ClientEventName> =
  Parameters<ClientToServerEvents[E]>[1] extends Ack<infer T> ? T : never;

/** One handler per client event; a thrown FeditError becomes the refusal the client receives. */
export type Handlers = {
  [E in ClientEventName]: (
    socket: FeditSocket,
    payload: ClientPayload<E>,
  ) => Promise<ClientResult<E>> | ClientResult<E>;
};

export interface Transport {
  io: FeditNamespace;
  /** Disconnects every participant of this federation (the HTTP server is closed by its owner). */
  close(): void;
}

export interface TransportOptions {
  /** Where this federation's participants connect (see attachSocketServer). */
  namespace: FeditNamespace;
  federation: string;
  /** How long a connection may stay unauthenticated (its challenge's lifetime). */
  challengeTtlMs?: number;
  coordinatorSignKey: Uint8Array;
  handlers: Handlers;
  onConnection(socket: FeditSocket): void;
}

/**
 * The socket.io server on `http` (created by ./http-server.ts), speaking fedit's codec: frames
 * small until a connection authenticates, connections capped per process (connections.ts).
 */
export function attachSocketServer(http: HttpServer, caps: ConnectionCapsOptions = {}): FeditServer {
  const connectionCaps = new ConnectionCaps(caps);
  const io: FeditServer = new Server(http, {
    parser: preAuthParser(profile.enabled ? profiledParser : msgpackParser),
    maxHttpBufferSize: MAX_FRAME_BYTES,
    pingTimeout: 60_000, // long uploads must not trip the heartbeat
    serveClient: false,
    allowRequest: connectionCaps.allowRequest,
  });
  connectionCaps.watch(io.engine);
  return io;
}

export function createTransport(o: TransportOptions): Transport {
  const io = o.namespace;
  const ttlMs = o.challengeTtlMs ?? AUTH_CHALLENGE_TTL_MS;
  io.on('connection', (socket) => {
    // Every proof and enrolment on this connection is bound to this challenge (crypto/auth.ts).
    socket.data.challenge = new AuthChallenge({
      federation: o.federation,
      coordinator: o.coordinatorSignKey,
      ttlMs,
    });
    dropUnauthenticatedAfter(socket, ttlMs);
    socket.emit('auth:hello', {
      protocol: PROTOCOL_VERSION,
      federation: o.federation,
      nonce: socket.data.challenge.nonce,
    });
    for (const event of CLIENT_EVENTS) answer(socket, event, o.handlers[event]);
    refuseUnknownEvents(socket);
    o.onConnection(socket);
  });
  return {
    io,
    close() {
      io.disconnectSockets(true);
    },
  };
}

/**
 * The server's parser: the same wire format, each connection's decoder starting at the
 * pre-authentication frame limit (socket.io makes one decoder per connection).
 */
function preAuthParser<P extends typeof msgpackParser>(parser: P): P {
  const Base = parser.Decoder;
  class PreAuthDecoder extends Base {
    constructor() {
      super({ maxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES });
    }
  }
  return { ...parser, Decoder: PreAuthDecoder };
}

/** The connection proved who it is: from now on it may send frames up to MAX_FRAME_BYTES. */
export function allowFullFrames(socket: FeditSocket): void {
  // socket.io keeps the connection's decoder on its (internal) client; the parser made it.
  const { decoder } = socket.client as unknown as { decoder?: unknown };
  if (decoder instanceof Decoder) decoder.maxFrameBytes = MAX_FRAME_BYTES;
}

/** A connection still unauthenticated when its challenge expires is closed: it can do nothing more. */
function dropUnauthenticatedAfter(socket: FeditSocket, ttlMs: number): void {
  const timer = setLongTimeout(() => {
    if (socket.data.participant !== undefined) return;
    socket.emit('error', {
      code: 'AUTH_EXPIRED',
      message: `the connection did not authenticate within ${Math.round(ttlMs / 1000)} s; connect again`,
    });
    socket.disconnect(true);
  }, ttlMs);
  socket.once('disconnect', () => timer.cancel());
}

/** Registers `run` for `event`: validate, run, acknowledge; any error becomes a named refusal. */
function answer<E extends ClientEventName>(socket: FeditSocket, event: E, run: Handlers[E]): void {
  // socket.io's typed `on` cannot see through the generic E; the validator below does the typing
  (socket.on as (ev: string, listener: (payload: unknown, ack: unknown) => void) => void)(
    event,
    async (payload: unknown, ack: unknown) => {
      if (typeof ack !== 'function') {
        socket.emit('error', { code: 'PROTOCOL_ACK', message: `${event} needs an acknowledgement callback` });
        return;
      }
      const reply = ack as (r: object) => void;
      try {
        const valid = timed('validate', () => validateClientPayload(event, payload)) as ClientPayload<E>;
        reply({ ok: true, ...(await run(socket, valid)) });
      } catch (err) {
        if (!(err instanceof FeditError)) console.error(`fedit coordinator: ${event} failed:`, err);
        reply(ackError(err));
      }
    },
  );
}

/** An event the protocol does not define is refused, rather than left unanswered. */
function refuseUnknownEvents(socket: FeditSocket): void {
  socket.onAny((event: unknown, ...args: unknown[]) => {
    if ((CLIENT_EVENTS as readonly unknown[]).includes(event)) return;
    const refusal = ackError(unknownEvent(event));
    const ack = args.at(-1);
    if (typeof ack === 'function') (ack as (r: object) => void)(refusal);
    else if (!refusal.ok) socket.emit('error', refusal.error);
  });
}
