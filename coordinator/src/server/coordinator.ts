// The running coordinator, composed of its parts:
//
//   transport.ts     socket.io + MessagePack, auth challenge per connection, one validated handler
//                    per client event, unknown events refused
//   sessions.ts      auth:prove, which connection is which participant, who is ready to train
//   enrolment.ts     enrol: invite redemption and the enrol record
//   rename.ts        participant:rename: a signed new display name and the rename record
//   adapters.ts      adapter:get: global adapters only, chunk by chunk
//   uploads.ts       update:begin / chunk / commit, through the admission rules
//                    (shared/rounds/admission.ts)
//   round-runner.ts  the round state machine: open, settle, close (aggregate or abort)
//   ledger.ts        the round log and the index, written together
//
// Every decision is a record in the signed round log before anyone is told. A coordinator that
// restarts with a round open aborts it visibly (round-aborted) and opens the next one: no round is
// ever applied twice. After the last round the coordinator keeps serving, read-only: participants
// authenticate and fetch the final adapter, no round opens, uploads are refused
// (FEDERATION_FINISHED); a coordinator started on a finished federation does the same.

import { rmSync } from 'node:fs';
import {
  BlobStore,
  RoundLog,
  configHash,
  type FederationConfig,
  type FederationPaths,
  type RoundRecord,
} from '@fedit/shared';
import {
  checkConfigMatchesLog,
  openFederationDir,
  readFederationLog,
  staleUploadDirs,
  type OpenedFederation,
} from '../federation/dir.ts';
import { lockFederation } from '../federation/lock.ts';
import { tightenFederationFolder } from '../federation/permissions.ts';
import { CoordinatorIndex } from '../store/index-db.ts';
import { GlobalAdapters } from './adapters.ts';
import { Enrolment } from './enrolment.ts';
import { Renaming } from './rename.ts';
import type { CoordinatorEvent, Emit } from './events.ts';
import { removeOrphanBlobs } from './blob-sweep.ts';
import { Ledger } from './ledger.ts';
import { serveRevocations } from './revocations.ts';
import { profile } from './profile.ts';
import { RoundRunner } from './round-runner.ts';
import { Sessions } from './sessions.ts';
import { createTransport } from './transport.ts';
import { Uploads } from './uploads.ts';

export interface CoordinatorOptions {
  dir: string;
  host?: string;
  port?: number;
  onEvent?: (e: CoordinatorEvent) => void;
  /** Don't run rounds (serve enrolment and downloads only). */
  noRounds?: boolean;
  /** Turn on the hot-path timers of ./profile.ts (as FEDIT_PROFILE=1 does). */
  profile?: boolean;
  /** Connection caps and the unauthenticated lifetime (transport.ts, connections.ts). */
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  challengeTtlMs?: number;
}

export interface RunningCoordinator {
  url: string;
  config: FederationConfig;
  /**
   * Resolves when every configured round has ended (completed; the coordinator then goes on serving
   * the final adapter until close()) or the coordinator is closed.
   */
  finished: Promise<{ completed: boolean }>;
  close(): Promise<void>;
}

export async function startCoordinator(o: CoordinatorOptions): Promise<RunningCoordinator> {
  // A missing or damaged folder is named before anything is written. What is read here (config,
  // keys, paths) no other writer changes; the round log is read only once the lock is held.
  const fed = openFederationDir(o.dir);
  // The round log has one writer: a second coordinator, or a revocation, waits for this one to stop.
  const lock = lockFederation(o.dir, 'coordinator');
  try {
    const running = await runCoordinator(o, fed);
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

async function runCoordinator(o: CoordinatorOptions, fed: OpenedFederation): Promise<RunningCoordinator> {
  if (o.profile) profile.enabled = true;
  const { config, identity, paths } = fed;
  const emit: Emit = (e) => o.onEvent?.(e);
  const tightened = tightenFederationFolder(paths); // a folder made before fedit kept it owner-only
  if (tightened.length > 0) emit({ type: 'permissions-tightened', paths: tightened });
  const { ledger, records } = await openLedger(fed);
  const blobs = new BlobStore(paths.blobs);
  await recover(ledger, paths, blobs, emit);

  const adapters = new GlobalAdapters(blobs, records);
  const hashOfConfig = configHash(config);
  // The parts refer to each other through callbacks, called only once all are built (no socket
  // connects before listen): sessions tell the runner who came online, the runner asks sessions
  // who is connected, the transport hands each event to its part.
  const sessions = new Sessions({
    ledger,
    emit,
    needed: config.participantsPerRound.minimum,
    onAuthenticated: (socket) => rounds.announce(socket),
    onReadiness: () => rounds.nudge(),
  });
  const enrolment = new Enrolment({ dir: o.dir, ledger, sessions, emit });
  const renaming = new Renaming({ federation: config.id, ledger, sessions, emit });
  const transport = createTransport({
    federation: config.id,
    coordinatorSignKey: identity.sign.publicKey,
    maxConnections: o.maxConnections,
    maxConnectionsPerAddress: o.maxConnectionsPerAddress,
    challengeTtlMs: o.challengeTtlMs,
    onConnection: (socket) => sessions.track(socket),
    handlers: {
      'auth:prove': (socket, p) => sessions.prove(socket, p),
      enrol: (socket, p) => enrolment.enrol(socket, p),
      'participant:rename': (socket, p) => renaming.rename(socket, p),
      'federation:info': () => ({
        config: JSON.stringify(config),
        configHash: hashOfConfig,
      }),
      'participant:ready': (socket, p) => sessions.setReady(socket, p),
      'adapter:get': (socket, p) => {
        sessions.participantOf(socket);
        return adapters.chunk(p.hash, p.index);
      },
      'update:begin': (socket, p) => uploads.begin(socket, p),
      'update:chunk': (socket, p) => uploads.chunk(socket, p),
      'update:commit': (socket, p) => uploads.commit(socket, p),
    },
  });
  const rounds = new RoundRunner({
    config,
    configHash: hashOfConfig,
    ledger,
    blobs,
    adapters,
    io: transport.io,
    uploadsDir: paths.uploads,
    afterRound: () => removeOrphanBlobs(paths, blobs),
    isConnected: (p) => sessions.isConnected(p),
    readyParticipants: () => sessions.readyParticipants(),
    readyAnnouncements: () => sessions.readyAnnouncements,
    emit,
  });
  const uploads = new Uploads({
    config,
    box: identity.box,
    ledger,
    blobs,
    rounds,
    sessions,
    uploadsDir: paths.uploads,
    emit,
  });

  const stopRevocations = serveRevocations({ root: o.dir, config, ledger, sessions, rounds, emit });

  const host = o.host ?? '127.0.0.1';
  const url = await transport.listen(host, o.port ?? 0).catch(async (err: unknown) => {
    stopRevocations();
    await transport.close();
    await ledger.log.close();
    throw err;
  });
  emit({ type: 'listening', url });
  const finished = o.noRounds ? new Promise<{ completed: boolean }>(() => {}) : rounds.run();
  return {
    url,
    config,
    finished,
    async close() {
      rounds.stop();
      stopRevocations();
      await transport.close();
      await ledger.close();
    },
  };
}

/**
 * The round log, opened for appending, and the index rebuilt from it. The log is read (a torn last
 * line is left out) and compared with federation.json first, so an edited federation.json is
 * named field by field, its id included, and nothing is written.
 */
async function openLedger(fed: OpenedFederation): Promise<{ ledger: Ledger; records: RoundRecord[] }> {
  const { config, identity, paths } = fed;
  const records = await readFederationLog(paths);
  checkConfigMatchesLog(config, records, paths.config);
  const log = await RoundLog.open(paths.log, {
    federation: config.id,
    coordinatorSecretKey: identity.sign.secretKey,
  });
  return { ledger: new Ledger(log, await CoordinatorIndex.open(paths.index, records)), records };
}

/** A round left open by a crash is aborted, visibly, before anything else happens. */
async function recover(ledger: Ledger, paths: FederationPaths, blobs: BlobStore, emit: Emit): Promise<void> {
  const stale = ledger.state.openRound;
  if (stale) {
    await ledger.append({
      kind: 'round-aborted',
      body: {
        reason:
          "the coordinator restarted while the round was open; its uploads were discarded; an aborted round does not count toward the federation's rounds and is retried",
        dropped: [],
      },
    });
    emit({ type: 'recovered', abortedRound: stale.round });
  }
  for (const d of staleUploadDirs(paths)) rmSync(d, { recursive: true, force: true });
  await removeOrphanBlobs(paths, blobs); // updates of rounds aborted, here or before
  await ledger.index.save(); // the index as rebuilt from the log, before anyone connects
}
