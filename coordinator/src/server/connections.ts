// Caps on open connections, in total and per remote address. Without them anyone could open
// connections until the coordinator ran out of memory or file descriptors (300 unauthenticated
// sockets stayed open indefinitely in the adversarial run). The caps are checked at the
// engine.io handshake (`allowRequest`), before a socket.io connection exists; a refusal answers
// HTTP 403 (polling) or 400 (websocket) with a message naming the cap and its option. The
// defaults are far above what a federation needs (one connection per participant, two while a
// participant reconnects); behind a reverse proxy every connection comes from the proxy's
// address, so there the per-address cap should be raised to the total.
//
// Connections are counted from the handshake's approval until the engine.io connection closes.
// A handshake approved but never completed (a peer that gives up mid-handshake) is released when
// engine.io reports the failed handshake ('connection_error') or after HANDSHAKE_GRACE_MS.

import type { IncomingMessage } from 'node:http';

/** What this file uses of engine.io's server (socket.io's `io.engine`). */
interface EngineServer {
  on(event: 'connection', listener: (conn: EngineConnection) => void): unknown;
  on(event: 'connection_error', listener: (err: { req: IncomingMessage }) => void): unknown;
}
interface EngineConnection {
  request: IncomingMessage;
  once(event: 'close', listener: () => void): unknown;
}

/** Default most open connections, all addresses together (`--max-connections`). */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** Default most open connections from one remote address (`--max-connections-per-address`). */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 32;
const HANDSHAKE_GRACE_MS = 10_000;

export interface ConnectionCapsOptions {
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
}

export class ConnectionCaps {
  readonly maxConnections: number;
  readonly maxPerAddress: number;
  #total = 0;
  readonly #byAddress = new Map<string, number>();
  readonly #pending = new Map<IncomingMessage, { address: string; timer: NodeJS.Timeout }>();

  constructor(o: ConnectionCapsOptions = {}) {
    this.maxConnections = o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxPerAddress = o.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  }

  /** Open connections now (approved handshakes included). */
  get open(): number {
    return this.#total;
  }

  /** engine.io's `allowRequest`: approves a handshake under both caps, or refuses naming the cap. */
  allowRequest = (
    req: IncomingMessage,
    callback: (message: string | null, success: boolean) => void,
  ): void => {
    const address = addressOf(req);
    if (this.#total >= this.maxConnections) {
      callback(
        `the coordinator has ${this.#total} connections open, its limit (--max-connections ${this.maxConnections}); try again later`,
        false,
      );
      return;
    }
    const fromAddress = this.#byAddress.get(address) ?? 0;
    if (fromAddress >= this.maxPerAddress) {
      callback(
        `${fromAddress} connections are open from ${address}, the limit per address (--max-connections-per-address ${this.maxPerAddress})`,
        false,
      );
      return;
    }
    this.#take(address);
    const timer = setTimeout(() => this.#settle(req), HANDSHAKE_GRACE_MS);
    timer.unref();
    this.#pending.set(req, { address, timer });
    callback(null, true);
  };

  /** Counts each engine.io connection until it closes; releases handshakes that failed. */
  watch(engine: EngineServer): void {
    engine.on('connection', (conn) => {
      const address = this.#settle(conn.request, true) ?? addressOf(conn.request);
      conn.once('close', () => this.#release(address));
    });
    engine.on('connection_error', (err) => this.#settle(err.req));
  }

  /** Ends a pending handshake; kept: its count moves to the connection (returns its address). */
  #settle(req: IncomingMessage, kept = false): string | undefined {
    const pending = this.#pending.get(req);
    if (!pending) {
      if (kept) this.#take(addressOf(req)); // approved before watch() ran: count it now
      return undefined;
    }
    this.#pending.delete(req);
    clearTimeout(pending.timer);
    if (!kept) this.#release(pending.address);
    return pending.address;
  }

  #take(address: string): void {
    this.#total++;
    this.#byAddress.set(address, (this.#byAddress.get(address) ?? 0) + 1);
  }

  #release(address: string): void {
    this.#total--;
    const left = (this.#byAddress.get(address) ?? 1) - 1;
    if (left > 0) this.#byAddress.set(address, left);
    else this.#byAddress.delete(address);
  }
}

function addressOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}
