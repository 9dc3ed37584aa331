// The development shell: the desktop app's page in any browser, against the real backend.
//
// An HTTP server on 127.0.0.1 serves the renderer (client-app/renderer: index.html, styles, and
// its TypeScript bundled on the fly by esbuild), plus /fedit-api.js, a small script that defines
// `window.fedit` with the same shape as Electron's preload, and implements it over a WebSocket:
//
//   page -> shell   {"id": 1, "method": "getState", "args": []}
//   shell -> page   {"id": 1, "result": {...}}   or   {"id": 1, "error": {"code", "message"}}
//   shell -> page   {"event": {"type": "status", ...}}     (AppEvent, pushed)
//
// It is a development and test tool, and still careful: it listens on 127.0.0.1 only, the page
// URL carries a random per-run token without which neither the page nor the socket answers, the
// socket checks Origin and Host (another site in the same browser cannot talk to it, not even
// through DNS rebinding), and every call goes through the same validating backend as the app.
// Paths come from text fields: a page cannot open the system's file picker.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { FeditError } from '@fedit/shared';
import { API_METHODS, type ApiMethod, type AppEvent } from './api.ts';
import { AppBackend, type BackendOptions } from './backend.ts';
import { callBackend } from './dispatch.ts';
import { inProcessWorker } from './in-process-worker.ts';
import { WorkerProcessLink, forkedWorker } from './worker-link.ts';

/** client-app/renderer, next to src/ (and next to dist/ once compiled). */
export const RENDERER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../renderer');

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/** Largest RPC message the page may send. */
const MAX_MESSAGE_BYTES = 1024 * 1024;

export interface DevShellOptions extends Partial<Omit<BackendOptions, 'home' | 'worker'>> {
  /** The app's folder (identity, settings, memberships, logs). */
  home: string;
  /** 0 (default): any free port. */
  port?: number;
  /** 'process' (default): the training worker in a child process; 'inline': in this process. */
  worker?: 'process' | 'inline';
  rendererDir?: string;
}

export interface DevShell {
  /** The page's URL, token included. */
  readonly url: string;
  readonly backend: AppBackend;
  readonly worker: WorkerProcessLink;
  close(): Promise<void>;
}

export async function startDevShell(options: DevShellOptions): Promise<DevShell> {
  const rendererDir = options.rendererDir ?? RENDERER_DIR;
  const worker = new WorkerProcessLink(options.worker === 'inline' ? inProcessWorker : () => forkedWorker());
  const { port: _port, worker: _worker, rendererDir: _dir, ...backendOptions } = options;
  const backend = await AppBackend.open({
    ...backendOptions,
    worker,
    openPath:
      options.openPath ??
      (async (path) => {
        backend.log.info(`the logs are in ${path} (the development shell cannot open folders)`);
      }),
  });
  const site: Site = { token: randomBytes(24).toString('hex'), host: '', origin: '' };
  const { token } = site;
  const server = createServer((req, res) => {
    void servePage(req, res, site, rendererDir).catch((error: unknown) => {
      if (!res.headersSent)
        send(res, 500, 'text/plain; charset=utf-8', `dev shell: ${(error as Error).message}\n`);
      else res.destroy();
    });
  });

  const sockets = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  server.on('upgrade', (req, socket: Socket, head) => {
    const url = new URL(req.url ?? '/', site.origin);
    const allowed =
      url.pathname === '/api' &&
      req.headers.host === site.host &&
      req.headers.origin === site.origin &&
      sameToken(url.searchParams.get('token'), token);
    if (!allowed) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    sockets.handleUpgrade(req, socket, head, (ws) => serveApi(ws, backend));
  });
  // Open connections (the page's keep-alive, its socket) must not hold close() up.
  const connections = new Set<Socket>();
  server.on('connection', (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
  });

  await new Promise<void>((ready, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, '127.0.0.1', () => ready());
  });
  const port = (server.address() as AddressInfo).port;
  site.host = `127.0.0.1:${port}`;
  site.origin = `http://${site.host}`;
  backend.log.info(`development shell listening on ${site.origin}`);

  return {
    url: `${site.origin}/?token=${token}`,
    backend,
    worker,
    async close() {
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      await new Promise<void>((done) => {
        server.close(() => done());
        for (const socket of connections) socket.destroy();
      });
      await backend.close();
    },
  };
}

/** Where the page is served, and the token that opens it. */
interface Site {
  token: string;
  /** 127.0.0.1:<port>, once listening. */
  host: string;
  origin: string;
}

/** The page, its scripts (bundled on the fly) and its files, to the page's own URL only. */
async function servePage(req: IncomingMessage, res: ServerResponse, site: Site, rendererDir: string) {
  const { host, origin, token } = site;
  if (req.headers.host !== host) return send(res, 421, 'text/plain', 'wrong host\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'GET only\n');
  const url = new URL(req.url ?? '/', origin);
  const path = url.pathname;
  if (path === '/' || path === '/index.html') {
    if (!sameToken(url.searchParams.get('token'), token)) {
      return send(
        res,
        403,
        'text/plain; charset=utf-8',
        'open the URL the development shell printed (it carries a token)\n',
      );
    }
    const html = await readFile(join(rendererDir, 'index.html'), 'utf8');
    // The API script before the page's own, as Electron's preload runs before them.
    const tag = '<script src="/fedit-api.js"></script>\n    ';
    const at = html.search(/<script\b/i);
    const withApi =
      at >= 0 ? html.slice(0, at) + tag + html.slice(at) : html.replace(/<\/head>/i, `${tag}</head>`);
    return send(res, 200, STATIC_TYPES['.html'], withApi);
  }
  if (path === '/fedit-api.js') return send(res, 200, 'text/javascript; charset=utf-8', pageApiScript());
  if (path.endsWith('.js')) {
    const entry = join(rendererDir, 'src', `${path.slice(1, -3)}.ts`);
    if (!insideDir(entry, join(rendererDir, 'src')) || !(await isFile(entry))) {
      return send(res, 404, 'text/plain', 'not found\n');
    }
    return send(res, 200, 'text/javascript; charset=utf-8', await bundle(entry));
  }
  const file = join(rendererDir, normalize(decodeURIComponent(path)));
  const type = STATIC_TYPES[extname(file)];
  if (!type || !insideDir(file, rendererDir) || !(await isFile(file))) {
    return send(res, 404, 'text/plain', 'not found\n');
  }
  return send(res, 200, type, await readFile(file));
}

// ---- the API over the socket ---------------------------------------------------------------------

interface Call {
  id: number;
  method: ApiMethod;
  args: unknown[];
}

function parseCall(data: string): Call | { id?: number; error: string } {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return { error: 'the message is not JSON' };
  }
  if (typeof value !== 'object' || value === null) return { error: 'the message is not an object' };
  const { id, method, args } = value as Record<string, unknown>;
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) return { error: 'the message has no numeric id' };
  if (typeof method !== 'string' || !(API_METHODS as readonly string[]).includes(method)) {
    return { id, error: `no API method ${JSON.stringify(method).slice(0, 60)}` };
  }
  if (!Array.isArray(args) || args.length > 4)
    return { id, error: 'args must be a list of at most 4 arguments' };
  return { id, method: method as ApiMethod, args };
}

function serveApi(ws: WebSocket, backend: AppBackend): void {
  const sendJson = (message: unknown) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const unsubscribe = backend.onEvent((event: AppEvent) => sendJson({ event }));
  ws.on('close', unsubscribe);
  ws.on('message', (data, isBinary) => {
    if (isBinary)
      return sendJson({ error: { code: 'APP_ARGUMENT', message: 'binary messages are not understood' } });
    const call = parseCall(data.toString());
    if ('error' in call) {
      return sendJson({ id: call.id, error: { code: 'APP_ARGUMENT', message: call.error } });
    }
    void callBackend(backend, call.method, call.args).then(
      (result) => sendJson({ id: call.id, result: result ?? null }),
      (error: unknown) => {
        if (!(error instanceof FeditError))
          backend.log.error(`${call.method} failed: ${(error as Error).stack ?? String(error)}`);
        sendJson({ id: call.id, error: wireError(error) });
      },
    );
  });
}

function wireError(error: unknown): { code: string; message: string } {
  if (error instanceof FeditError) return { code: error.code, message: error.message };
  const system = error as NodeJS.ErrnoException;
  if (typeof system?.code === 'string') return { code: system.code, message: system.message };
  return { code: 'INTERNAL', message: 'something went wrong inside the app; the logs say more' };
}

/** The page's `window.fedit`: the preload's shape, over the socket. */
function pageApiScript(): string {
  return `// window.fedit for the development shell (the desktop app's preload provides the same object).
(() => {
  'use strict';
  const token = new URLSearchParams(location.search).get('token') || '';
  const socket = new WebSocket('ws://' + location.host + '/api?token=' + encodeURIComponent(token));
  const pending = new Map();
  const listeners = new Set();
  let nextId = 1;
  let closed = false;
  const opened = new Promise((resolve, reject) => {
    socket.addEventListener('open', () => resolve());
    socket.addEventListener('close', () => reject(new Error('the development shell is not running (its connection closed)')));
  });
  opened.catch(() => {});
  socket.addEventListener('message', (message) => {
    const data = JSON.parse(message.data);
    if (data.event) {
      for (const listener of listeners) listener(data.event);
      return;
    }
    const call = pending.get(data.id);
    if (!call) return;
    pending.delete(data.id);
    if (data.error) {
      const error = new Error(data.error.message);
      error.code = data.error.code;
      call.reject(error);
    } else call.resolve(data.result === null ? undefined : data.result);
  });
  socket.addEventListener('close', () => {
    closed = true;
    for (const call of pending.values()) call.reject(new Error('the connection to the development shell closed'));
    pending.clear();
  });
  const invoke = (method, args) =>
    opened.then(
      () =>
        new Promise((resolve, reject) => {
          if (closed) return reject(new Error('the connection to the development shell closed'));
          const id = nextId++;
          pending.set(id, { resolve, reject });
          socket.send(JSON.stringify({ id, method, args }));
        }),
    );
  const api = {};
  for (const method of ${JSON.stringify(API_METHODS)}) api[method] = (...args) => invoke(method, args);
  api.onEvent = (listener) => {
    if (typeof listener !== 'function') throw new TypeError('onEvent needs a listener function');
    listeners.add(listener);
    return () => void listeners.delete(listener);
  };
  Object.defineProperty(window, 'fedit', { value: Object.freeze(api), enumerable: true });
})();
`;
}

// ---- helpers -------------------------------------------------------------------------------------

async function bundle(entry: string): Promise<string> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    sourcemap: 'inline',
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  });
  res.end(body);
}

function sameToken(given: string | null, token: string): boolean {
  if (given === null || given.length !== token.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(token));
}

function insideDir(path: string, dir: string): boolean {
  const full = resolve(path);
  return full.startsWith(resolve(dir) + sep);
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
