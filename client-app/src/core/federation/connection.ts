// One participant's connection to a coordinator: socket.io over WebSocket with fedit's MessagePack
// parser, authenticated on every (re)connection.
//
//   connect -> 'auth:hello' {protocol, federation, nonce}
//           -> 'enrol' (first time, with the invite token) or 'auth:prove'
//           -> authenticated: requests may be sent; 'round:open' / 'round:closed' arrive, and
//              'federation:finished' once the last round is over (at once, on a finished federation)
//
// Those and 'federation:info' carry signed records, checked under the invite's coordinator key
// (announced.ts) before anything is handed on; a forgery fails the connection (FEDERATION_FORGED).
//
// Requests are sent only while the connection is authenticated: socket.io-client would otherwise
// buffer them while disconnected and flush them on the next connection, before authentication,
// where the coordinator refuses them. A request whose connection drops, or that is not answered
// in time, fails with a transient FederationError; the caller waits for `ready()` and tries again.
// Every acknowledgement is validated and a refusal becomes a FederationError carrying the
// coordinator's code and message (wire.ts). Its states, options and events are declared in
// connection-types.ts.
import { EventEmitter } from 'node:events';
import { io, type Socket } from 'socket.io-client';
import {
  SERVER_PAYLOAD_VALIDATORS,
  fingerprint,
  msgpackParser,
  proveAuth,
  publicIdentity,
  signEnrolment,
  type AnnouncedConfig,
  type AnnouncementTrust,
  type AuthContext,
  type AuthHello,
  type ClientEventName,
  type ClientPayload,
  type ClientToServerEvents,
  type FederationFinished,
  type RoundClosed,
  type ServerToClientEvents,
} from '@fedit/shared';
import {
  announcedConfig,
  announcedLastClosed,
  announcedView,
  type AnnouncedEvent,
  type AnnouncedRoundOpen,
  type SecurePhaseRecord,
} from './announced.ts';
import { identitiesOf } from './secure-identities.ts';
import type {
  AuthenticatedEvent,
  AuthMode,
  ConnectionEvents,
  ConnectionOptions,
  ConnectionState,
} from './connection-types.ts';
import { FederationError } from './errors.ts';
import { checkCoordinatorUrl, tlsOptions } from './url-policy.ts';
import { ackResult, checkHello, requestFailure, unreachableError, type OkAck } from './wire.ts';

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** How long `ready()` waits by default before giving up on an unreachable coordinator. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;

/** Loosely typed view of the socket for the generic request path (the event maps stay exact elsewhere). */
interface AckEmitter {
  timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<unknown> };
}

export class FederationConnection extends EventEmitter<ConnectionEvents> {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  readonly participantId: string;
  #state: ConnectionState = 'connecting';
  #auth: AuthMode;
  #failure: FederationError | undefined;
  #hello: AuthHello | undefined;
  /** Round events that arrived during the handshake (the coordinator announces before it acks). */
  #early: (() => void)[] = [];
  #lastConnectError: string | undefined;
  readonly #options: ConnectionOptions;
  readonly #requestTimeoutMs: number;
  readonly #trust: AnnouncementTrust;

  constructor(options: ConnectionOptions) {
    super();
    this.#options = options;
    this.#auth = options.auth;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#trust = { federation: options.federation, coordinator: options.coordinator };
    this.participantId = fingerprint(publicIdentity(options.identity));
    checkCoordinatorUrl(options.url); // plain http:// only to this computer, unless allowed
    this.socket = io(options.url, {
      ...tlsOptions(),
      parser: msgpackParser,
      transports: ['websocket'],
      reconnection: options.reconnection ?? true,
      reconnectionDelayMax: options.reconnectionDelayMax,
      autoConnect: false,
      // Every connection gets its own engine: two participants in one process must not share one.
      forceNew: true,
    });
    this.#wire();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The failure that closed the connection, if one did. */
  get failure(): FederationError | undefined {
    return this.#failure;
  }

  /** Starts connecting (and reconnecting after drops, when enabled). */
  open(): this {
    if (this.#state !== 'closed') this.socket.connect();
    return this;
  }

  /** Closes the connection for good. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    this.socket.disconnect();
    this.socket.removeAllListeners();
  }

  /**
   * Resolves once the connection is ready for requests (authenticated; with auth mode 'none', once
   * 'auth:hello' was checked). Rejects with the connection's failure, with FEDERATION_UNREACHABLE
   * after `timeoutMs` (default: wait forever), when the connection is closed, or when `signal` aborts.
   */
  ready(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'ready') return Promise.resolve();
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#state === 'closed') return Promise.reject(this.#closedError());
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        this.off('state', onState);
        this.off('failed', onFailed);
        options.signal?.removeEventListener('abort', onAbort);
        if (timer) clearTimeout(timer);
      };
      const onState = (state: ConnectionState) => {
        if (state === 'ready') {
          cleanup();
          resolve();
        } else if (state === 'closed') {
          cleanup();
          reject(this.#failure ?? this.#closedError());
        }
      };
      const onFailed = (error: FederationError) => {
        cleanup();
        reject(error);
      };
      const onAbort = () => {
        cleanup();
        reject(options.signal!.reason);
      };
      this.on('state', onState);
      this.on('failed', onFailed);
      if (options.signal) {
        if (options.signal.aborted) return onAbort();
        options.signal.addEventListener('abort', onAbort, { once: true });
      }
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          const seen = { connected: this.socket.connected, lastError: this.#lastConnectError };
          reject(unreachableError(this.#options.url, options.timeoutMs!, seen));
        }, options.timeoutMs);
      }
    });
  }

  /**
   * Sends client event `event` and returns its (validated) successful acknowledgement. Throws a
   * transient FederationError when the connection is not ready, drops, or the answer does not come
   * within the request timeout; a FederationError with the coordinator's code when it refuses.
   */
  async request<E extends ClientEventName>(
    event: E,
    payload: ClientPayload<E>,
    options: { timeoutMs?: number } = {},
  ): Promise<OkAck<E>> {
    if (this.#failure) throw this.#failure;
    if (this.#state !== 'ready' || !this.socket.connected) {
      throw new FederationError(
        'FEDERATION_DISCONNECTED',
        `cannot send ${event}: not connected to the coordinator at ${this.#options.url}`,
        { transient: true },
      );
    }
    return this.#send(event, payload, options.timeoutMs);
  }

  /** 'federation:info': the settings, from the config record the invite's coordinator key signed. */
  async federationInfo(): Promise<AnnouncedConfig & { lastClosed?: RoundClosed }> {
    const { record, lastClosed } = await this.request('federation:info', {});
    const config = announcedConfig(record, this.#trust);
    return lastClosed === undefined
      ? config
      : { ...config, lastClosed: announcedLastClosed(lastClosed, this.#trust) };
  }

  async #send<E extends ClientEventName>(event: E, payload: unknown, timeoutMs?: number): Promise<OkAck<E>> {
    const timeout = timeoutMs ?? this.#requestTimeoutMs;
    let raw: unknown;
    try {
      raw = await (this.socket as unknown as AckEmitter).timeout(timeout).emitWithAck(event, payload);
    } catch (cause) {
      throw requestFailure(event, cause, timeout);
    }
    return ackResult(event, raw);
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #fail(error: FederationError): void {
    if (this.#state === 'closed') return;
    this.#failure = error;
    this.emit('failed', error);
    this.close();
  }

  #closedError(): FederationError {
    return new FederationError('FEDERATION_DISCONNECTED', 'the connection to the coordinator was closed', {
      transient: false,
    });
  }

  #wire(): void {
    const socket = this.socket;
    socket.on('connect', () => {
      this.#lastConnectError = undefined;
      this.#early = [];
      this.#setState('authenticating');
    });
    socket.on('connect_error', (error) => {
      this.#lastConnectError = error.message;
      const message = `cannot reach the coordinator at ${this.#options.url}: ${error.message}`;
      if (this.#options.reconnection === false) {
        // No second attempt will be made: say so now rather than at the caller's timeout.
        this.#fail(
          new FederationError(
            'FEDERATION_UNREACHABLE',
            `${message}; check the address and your network, or try again later`,
            { transient: true, cause: error },
          ),
        );
      } else {
        this.emit('warning', message);
      }
    });
    socket.on('disconnect', (reason) => {
      // Never let socket.io flush requests made for the old connection into the next one.
      socket.sendBuffer.length = 0;
      if (this.#state === 'closed') return;
      this.emit('disconnected', reason);
      // 'io server disconnect' turns socket.io's reconnection off; a coordinator restarting or
      // shedding load is no reason to stop, so reconnect after a pause.
      if (reason === 'io server disconnect' && (this.#options.reconnection ?? true)) {
        setTimeout(() => {
          if (this.#state !== 'closed' && !socket.connected) socket.connect();
        }, 1000).unref();
      }
      this.#setState('connecting');
    });
    socket.on('auth:hello', (payload) => void this.#onHello(payload));
    socket.on('round:open', (payload) => this.#forward('round:open', payload));
    socket.on('round:closed', (payload) => this.#forward('round:closed', payload));
    socket.on('federation:finished', (payload) => this.#forward('federation:finished', payload));
    socket.on('secagg:phase', (payload) => this.#forward('secagg:phase', payload));
    socket.on('error', (payload) => {
      const parsed = this.#validate('error', payload);
      if (parsed) this.emit('server-error', parsed);
    });
  }

  #validate<E extends keyof ServerToClientEvents>(
    event: E,
    payload: unknown,
  ): Parameters<ServerToClientEvents[E]>[0] | undefined {
    try {
      return SERVER_PAYLOAD_VALIDATORS[event](payload) as Parameters<ServerToClientEvents[E]>[0];
    } catch (error) {
      this.emit('warning', `ignored a malformed ${event} from the coordinator: ${(error as Error).message}`);
      return undefined;
    }
  }

  #forward(event: AnnouncedEvent, payload: unknown): void {
    const parsed = this.#validate(event, payload);
    const config = this.#options.config;
    if (!parsed || !config) return; // without the settings (joining), a round is nothing to act on
    let view: ReturnType<typeof announcedView>;
    try {
      view = announcedView(event, parsed, config, this.#trust);
    } catch (error) {
      return this.#fail(error as FederationError);
    }
    const deliver = () => {
      if (event === 'round:open') this.emit('round:open', view as AnnouncedRoundOpen);
      else if (event === 'round:closed') this.emit('round:closed', view as RoundClosed);
      else if (event === 'secagg:phase')
        this.emit('secagg:phase', view as SecurePhaseRecord, identitiesOf(parsed));
      else this.emit('federation:finished', view as FederationFinished);
    };
    // The coordinator may announce the open round before it acknowledges the proof: hold such
    // events until the handshake is through, and deliver them after 'authenticated'.
    if (this.#state === 'authenticating') this.#early.push(deliver);
    else if (this.#state === 'ready') deliver();
  }

  #flushEarly(): void {
    const early = this.#early;
    this.#early = [];
    for (const deliver of early) deliver();
  }

  async #onHello(payload: unknown): Promise<void> {
    if (this.#state !== 'authenticating') return;
    let hello: AuthHello;
    try {
      hello = checkHello(payload, this.#options);
    } catch (error) {
      return this.#fail(error as FederationError);
    }
    this.#hello = hello;
    this.emit('hello', hello);
    if (this.#auth.kind === 'none') return this.#setState('ready');
    await this.#authenticate(hello, this.#auth);
  }

  /**
   * Enrols on this connection, which was opened with auth mode 'none' and is ready: answers the
   * connection's 'auth:hello' with an 'enrol' request. Reconnections then prove the enrolment.
   * Throws the coordinator's refusal (the connection stays open, unauthenticated).
   */
  async enrol(token: Uint8Array, displayName: string): Promise<AuthenticatedEvent> {
    if (this.#auth.kind !== 'none' || this.#state !== 'ready' || !this.#hello) {
      throw new FederationError(
        'FEDERATION_DISCONNECTED',
        'cannot enrol: the connection is not open and waiting for enrolment',
        { transient: true },
      );
    }
    const participantId = await this.#sendAuth(this.#hello, { kind: 'enrol', token, displayName });
    const event = { participantId, enrolled: true };
    this.emit('authenticated', event);
    return event;
  }

  /**
   * Answers `hello` with an enrolment or a proof; the participant id the coordinator confirms. After
   * an enrolment, reconnections prove it instead of spending the token again.
   */
  async #sendAuth(hello: AuthHello, auth: Exclude<AuthMode, { kind: 'none' }>): Promise<string> {
    const context: AuthContext = {
      federation: hello.federation,
      coordinator: this.#options.coordinator.sign,
      nonce: hello.nonce,
    };
    const { identity } = this.#options;
    const { participantId } =
      auth.kind === 'enrol'
        ? await this.#send('enrol', signEnrolment(identity, context, auth))
        : await this.#send('auth:prove', proveAuth(identity, context));
    if (participantId !== this.participantId) {
      throw new FederationError(
        'FEDERATION_PROTOCOL',
        `the coordinator calls this participant ${participantId}, but its identity's fingerprint is ${this.participantId}`,
      );
    }
    if (auth.kind === 'enrol') this.#auth = { kind: 'prove' };
    return participantId;
  }

  async #authenticate(hello: AuthHello, auth: Exclude<AuthMode, { kind: 'none' }>): Promise<void> {
    try {
      const participantId = await this.#sendAuth(hello, auth);
      if (this.#state !== 'authenticating') return;
      this.#setState('ready');
      this.emit('authenticated', { participantId, enrolled: auth.kind === 'enrol' });
      this.#flushEarly();
    } catch (error) {
      if (error instanceof FederationError && error.transient) {
        // No answer to the proof: start over on a fresh connection (and a fresh nonce).
        this.emit('warning', error.message);
        if (this.#state !== 'closed') {
          this.socket.disconnect();
          setTimeout(() => {
            if (this.#state !== 'closed') this.socket.connect();
          }, 500).unref();
          this.#setState('connecting');
        }
        return;
      }
      this.#fail(
        error instanceof FederationError ? error : new FederationError('FEDERATION_PROTOCOL', String(error)),
      );
    }
  }
}
