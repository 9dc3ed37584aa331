// One coordinator process: the HTTP(S) server (./http-server.ts) with socket.io on it, and one or
// several federations (./coordinator.ts), each with its own folder, lock and round log.
//
// Where participants connect: with one folder, socket.io's main namespace "/", so an invite's URL
// is the server's (http://host:7150), exactly as before several were possible. With several, each
// federation has the namespace "/<federation id>" and its invites carry that path
// (http://host:7150/<id>; socket.io-client takes a URL's path as the namespace, so participants
// need nothing more). A connection to "/" of such a process is told the ids and closed.
//
// Shutdown (close()): /readyz turns 503, rounds stop, every participant is disconnected, the HTTP
// server stops accepting and closes idle connections; what is still open after the grace period
// (a peer holding a half-sent request included) is destroyed; then logs close and locks release.

import { FeditError, type FederationConfig } from '@fedit/shared';
import { openFederationDir } from '../federation/dir.ts';
import {
  lockFederationDir,
  runFederation,
  type LockedFederation,
  type RunningFederation,
} from './coordinator.ts';
import type { CoordinatorEvent, ParticipantNames } from './events.ts';
import {
  createCoordinatorHttpServer,
  DEFAULT_GRACE_MS,
  type ServerPhase,
  type TlsFiles,
} from './http-server.ts';
import { CoordinatorMetrics } from './metrics.ts';
import { profile } from './profile.ts';
import { attachSocketServer, type FeditNamespace, type FeditServer } from './transport.ts';

export interface ServeOptions {
  /** The federation folders, one or more (distinct federation ids). */
  dirs: string[];
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port, named in the URL. */
  port?: number;
  /** Serve HTTPS with this certificate and key (PEM files), checked at start. */
  tls?: TlsFiles;
  /** How long close() lets connections finish before destroying them; default 10 s. */
  graceMs?: number;
  /** Each federation's events, with its id and the display names its log records. */
  onEvent?: (e: CoordinatorEvent, federation: string, names: ParticipantNames) => void;
  /** Don't run rounds (serve enrolment and downloads only). */
  noRounds?: boolean;
  /** Connection caps, for the whole process (connections.ts). */
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  /** How long a connection may stay unauthenticated (transport.ts). */
  challengeTtlMs?: number;
  /** Turn on the hot-path timers of ./profile.ts (as FEDIT_PROFILE=1 does). */
  profile?: boolean;
}

export interface ServedFederation {
  /** What its participants connect to (an invite's URL). */
  url: string;
  config: FederationConfig;
  /** Resolves when every configured round has ended (completed) or the process is stopped. */
  finished: Promise<{ completed: boolean }>;
}

export interface RunningServer {
  /** The server's own URL (scheme, address and the real port). */
  url: string;
  federations: ServedFederation[];
  close(): Promise<void>;
}

/** One federation, as `fedit coordinator start DIR` with a single folder serves it. */
export interface CoordinatorOptions extends Omit<ServeOptions, 'dirs' | 'onEvent'> {
  dir: string;
  onEvent?: (e: CoordinatorEvent, names: ParticipantNames) => void;
}

export interface RunningCoordinator extends ServedFederation {
  close(): Promise<void>;
}

export async function startCoordinator(o: CoordinatorOptions): Promise<RunningCoordinator> {
  const { dir, onEvent, ...rest } = o;
  const server = await startServer({
    ...rest,
    dirs: [dir],
    onEvent: onEvent && ((e, _id, names) => onEvent(e, names)),
  });
  return { ...server.federations[0], close: () => server.close() };
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  if (o.profile) profile.enabled = true;
  if (o.dirs.length === 0) throw new FeditError('CLI_OPTION', 'name at least one federation folder');
  const locked = lockAll(o.dirs);
  const release = () => locked.forEach((l) => l.release());
  let phase: ServerPhase = 'starting';
  const states = new Map(locked.map((l) => [l.fed.config.id, 'opening']));
  const metrics = new CoordinatorMetrics();
  const running: RunningFederation[] = [];
  let http;
  try {
    http = createCoordinatorHttpServer({
      tls: o.tls,
      metrics,
      readiness: () => ({ phase, federations: Object.fromEntries(states) }),
    });
  } catch (err) {
    release();
    throw err;
  }
  const io = attachSocketServer(http.server, {
    maxConnections: o.maxConnections,
    maxConnectionsPerAddress: o.maxConnectionsPerAddress,
  });
  const several = locked.length > 1;
  let stopping: Promise<void> | undefined;
  const stopAll = () => (stopping ??= stop());
  const stop = async () => {
    phase = 'stopping';
    for (const id of states.keys()) states.set(id, 'stopping');
    const stopped = Promise.allSettled(running.map((f) => f.stop()));
    io.engine.close(); // every engine.io client, websocket or long-poll
    await http.close(o.graceMs ?? DEFAULT_GRACE_MS);
    await stopped;
    release();
  };
  try {
    // The server listens first, so that /readyz answers (503) while long logs are read; a
    // federation's namespace admits participants only once it runs.
    const namespaces = new Map(
      locked.map((l) => [l.fed.config.id, namespaceOf(io, l.fed.config.id, several)]),
    );
    if (several) refuseMainNamespace(io, [...states.keys()]);
    const url = await http.listen(o.host ?? '127.0.0.1', o.port ?? 0);
    for (const l of locked) {
      const id = l.fed.config.id;
      const namespace = namespaces.get(id)!;
      running.push(
        await runFederation(l, {
          namespace,
          metrics,
          noRounds: o.noRounds,
          challengeTtlMs: o.challengeTtlMs,
          onEvent: (e, names) => o.onEvent?.(e, id, names),
        }),
      );
      states.set(id, 'running');
    }
    phase = 'ready';
    const federations = running.map((f) => {
      const id = f.config.id;
      const fedUrl = several ? `${url}/${id}` : url;
      o.onEvent?.({ type: 'listening', url: fedUrl }, id, () => undefined);
      const finished = f.run();
      void finished.then(({ completed }) => {
        if (completed && phase === 'ready') states.set(id, 'finished');
      });
      return { url: fedUrl, config: f.config, finished };
    });
    return { url, federations, close: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The federation's namespace, refusing connections until the federation runs. */
function namespaceOf(io: FeditServer, id: string, several: boolean): FeditNamespace {
  const namespace = several ? io.of(`/${id}`) : io.of('/');
  // The transport registers its 'connection' handler once the federation's log is open.
  namespace.use((_socket, next) => {
    const running = namespace.listeners('connection').length > 0;
    next(running ? undefined : new Error('the coordinator is starting; try again shortly'));
  });
  return namespace;
}

/**
 * Every folder locked, or none. The federation ids are compared before any lock is taken, so the
 * same folder named twice is named as such (not as "in use" by this very process).
 */
function lockAll(dirs: string[]): LockedFederation[] {
  const seen = new Map<string, string>();
  for (const dir of dirs) {
    const { id } = openFederationDir(dir).config;
    const twin = seen.get(id);
    if (twin !== undefined)
      throw new FeditError(
        'CLI_OPTION',
        `${twin} and ${dir} are both federation "${id}": one process serves each federation once`,
      );
    seen.set(id, dir);
  }
  const locked: LockedFederation[] = [];
  try {
    for (const dir of dirs) locked.push(lockFederationDir(dir));
    return locked;
  } catch (err) {
    locked.forEach((l) => l.release());
    throw err;
  }
}

/** With several federations, "/" names none: say which exist, and close the connection. */
function refuseMainNamespace(io: FeditServer, ids: string[]): void {
  io.of('/').on('connection', (socket) => {
    socket.emit('error', {
      code: 'FEDERATION_PATH',
      message: `this coordinator serves several federations (${ids.join(', ')}): connect to the URL your invite names, which ends in /<federation id>`,
    });
    socket.disconnect(true);
  });
}
