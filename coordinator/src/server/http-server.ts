// The coordinator's HTTP(S) server: socket.io (./transport.ts) attaches to it, and it answers the
// operator's few plain requests itself:
//
//   GET /healthz   200 "ok": the process is alive and its event loop turns
//   GET /readyz    200 once every federation's log is open and the server listens, 503 while
//                  starting or stopping; a JSON body names each federation's state
//   GET /metrics   Prometheus text (./metrics.ts)
//   anything else  404; a request with a body 413, another method 405
//
// Nothing here reads a request body, headers are bounded (MAX_HEADER_BYTES) and a request must
// arrive whole within REQUEST_TIMEOUT_MS, so these endpoints cannot be made to hold memory or a
// connection. Shutdown is bounded: close(graceMs) stops accepting, closes idle connections at once
// and destroys whatever is still open (a peer holding a half-sent request included) after the
// grace period, so the process, and its federation folders' locks, never wait on a peer.

import { readFileSync } from 'node:fs';
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { FeditError } from '@fedit/shared';
import type { CoordinatorMetrics } from './metrics.ts';

/** Headers larger than this are refused with 431 (Node's default is 16 KiB). */
export const MAX_HEADER_BYTES = 8 * 1024;
/** A request's headers must arrive within this (Node's default is 60 s). */
export const HEADERS_TIMEOUT_MS = 10_000;
/** A whole request must arrive within this (a socket.io long-poll request is answered, not sent, slowly). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** How long a stopping coordinator lets connections finish before it closes them. */
export const DEFAULT_GRACE_MS = 10_000;

/** PEM files of the coordinator's certificate (chain) and private key. */
export interface TlsFiles {
  cert: string;
  key: string;
}

export type ServerPhase = 'starting' | 'ready' | 'stopping';

export interface Readiness {
  phase: ServerPhase;
  /** Each federation's state by id: 'opening', 'running', 'finished', 'stopping'. */
  federations: Record<string, string>;
}

export interface HttpServerOptions {
  tls?: TlsFiles;
  /** Defaults HEADERS_TIMEOUT_MS and REQUEST_TIMEOUT_MS; checked every tenth of the headers' time. */
  timeouts?: { headersMs?: number; requestMs?: number };
  readiness(): Readiness;
  metrics: CoordinatorMetrics;
}

export interface CoordinatorHttpServer {
  server: Server;
  scheme: 'http' | 'https';
  /** Listens on host:port (0: a free port); resolves to the URL. A port in use is a named error. */
  listen(host: string, port: number): Promise<string>;
  /** Stops accepting; open connections get `graceMs`, then are destroyed. */
  close(graceMs?: number): Promise<void>;
}

export function createCoordinatorHttpServer(o: HttpServerOptions): CoordinatorHttpServer {
  const headersMs = o.timeouts?.headersMs ?? HEADERS_TIMEOUT_MS;
  const limits = {
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: headersMs,
    requestTimeout: o.timeouts?.requestMs ?? REQUEST_TIMEOUT_MS,
    // Node checks the two timeouts above only this often (30 s by default).
    connectionsCheckingInterval: Math.max(100, headersMs / 10),
  };
  const answer = (req: IncomingMessage, res: ServerResponse) => void route(o, req, res);
  const server: Server = o.tls
    ? createHttps({ ...limits, ...readTls(o.tls) }, answer)
    : createHttp(limits, answer);
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    o.metrics.track(socket);
  });
  const scheme = o.tls ? 'https' : 'http';
  return {
    server,
    scheme,
    listen: (host, port) => listen(server, scheme, host, port),
    close: (graceMs = DEFAULT_GRACE_MS) => closeWithin(server, sockets, graceMs),
  };
}

/** The certificate and key, read and checked now so that a bad file is named at start. */
function readTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new FeditError(
        'COORDINATOR_TLS',
        `cannot read the TLS ${what} ${path}: ${(err as Error).message}`,
      );
    }
  };
  const cert = read('certificate (--tls-cert)', files.cert);
  const key = read('key (--tls-key)', files.key);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (err) {
    throw new FeditError(
      'COORDINATOR_TLS',
      `--tls-cert ${files.cert} is not a PEM certificate: ${(err as Error).message}`,
    );
  }
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(key)))
      throw new Error('it is not the key of that certificate');
  } catch (err) {
    throw new FeditError('COORDINATOR_TLS', `--tls-key ${files.key} does not fit: ${(err as Error).message}`);
  }
  if (Date.parse(certificate.validTo) < Date.now())
    throw new FeditError('COORDINATOR_TLS', `--tls-cert ${files.cert} expired on ${certificate.validTo}`);
  return { cert, key };
}

async function route(o: HttpServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // Reached only for paths socket.io does not own (it sees its own requests first).
  const hasBody =
    Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (hasBody) return reply(res, 413, 'text/plain', 'request bodies are not accepted here\n', true);
  if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'text/plain', 'GET only\n');
  const path = (req.url ?? '/').split('?')[0];
  switch (path) {
    case '/healthz':
      return reply(res, 200, 'text/plain', 'ok\n');
    case '/readyz': {
      const readiness = o.readiness();
      return reply(
        res,
        readiness.phase === 'ready' ? 200 : 503,
        'application/json',
        JSON.stringify(readiness) + '\n',
      );
    }
    case '/metrics': {
      const text = await o.metrics.registry.metrics();
      return reply(res, 200, o.metrics.registry.contentType, text);
    }
    default:
      return reply(res, 404, 'text/plain', 'not found\n');
  }
}

function reply(res: ServerResponse, status: number, type: string, body: string, close = false): void {
  // A refused body is never read: the connection closes after the answer rather than drain it.
  if (close) res.setHeader('connection', 'close');
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
  if (close) res.once('finish', () => res.req.socket.destroySoon());
}

async function listen(server: Server, scheme: string, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    throw new FeditError(
      'COORDINATOR_LISTEN',
      `cannot listen on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'the address is in use (another coordinator, or another program)' : err.message}`,
    );
  });
  const address = server.address() as AddressInfo;
  const shown = address.address.includes(':') ? `[${address.address}]` : address.address;
  return `${scheme}://${shown}:${address.port}`;
}

/**
 * server.close() alone waits for every connection to end, which a peer that never finishes its
 * request decides: idle keep-alive connections are closed now, the rest after `graceMs`.
 */
async function closeWithin(server: Server, sockets: Set<Socket>, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => {
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
  }, graceMs);
  timer.unref();
  await closed;
  clearTimeout(timer);
}
