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
//   secure-round.ts  a secure round's phases (secagg:advertise / shares / inbox / reveal), the
//                    masked uploads' admission; round-aggregate.ts both aggregation paths
//   ledger.ts        the round log and the index, written together, and the log's Merkle tree
//   log-proofs.ts    log:head / log:inclusion / log:consistency: signed tree heads and proofs
//   metrics.ts       the Prometheus series, fed by the events below and the update refusals
//
// This file runs one federation on the socket.io namespace it is given; ./serve.ts composes the
// process: the HTTP(S) server, one or several federations on it, and the bounded shutdown.
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
  type FederationConfig,
  type FederationPaths,
  type RoundRecord,
  type SeedChain,
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
import { readSeedChain } from '../federation/seed-chain-file.ts';
import { CoordinatorIndex } from '../store/index-db.ts';
import { GlobalAdapters } from './adapters.ts';
import { Enrolment } from './enrolment.ts';
import { Renaming } from './rename.ts';
import type { CoordinatorEvent, Emit, ParticipantNames } from './events.ts';
import { removeOrphanBlobs } from './blob-sweep.ts';
import { Ledger } from './ledger.ts';
import { LogProofs } from './log-proofs.ts';
import { serveRevocations } from './revocations.ts';
import { RoundRunner } from './round-runner.ts';
import { Sessions } from './sessions.ts';
import type { CoordinatorMetrics } from './metrics.ts';
import { createTransport, type FeditNamespace } from './transport.ts';
import { Uploads } from './uploads.ts';

/** One federation folder, checked and locked (the round log has one writer). */
export interface LockedFederation {
  dir: string;
  fed: OpenedFederation;
  release(): void;
}

/**
 * Opens and locks `dir`. A missing or damaged folder is named before anything is written; what
 * is read here (config, keys, paths) no other writer changes; the round log is read only once the
 * lock is held. A second coordinator, or a revocation, waits for this one to stop.
 */
export function lockFederationDir(dir: string): LockedFederation {
  const fed = openFederationDir(dir);
  const lock = lockFederation(dir, 'coordinator');
  return { dir, fed, release: () => lock.release() };
}

export interface FederationRunOptions {
  /** Where its participants connect. */
  namespace: FeditNamespace;
  metrics: CoordinatorMetrics;
  /** Each event, and the display names the log records, so a log line can name participants. */
  onEvent?: (e: CoordinatorEvent, names: ParticipantNames) => void;
  /** Don't run rounds (serve enrolment and downloads only). */
  noRounds?: boolean;
  /** How long a connection may stay unauthenticated (its challenge's lifetime; transport.ts). */
  challengeTtlMs?: number;
}

/** One federation being served (its lock is released by whoever took it). */
export interface RunningFederation {
  config: FederationConfig;
  /**
   * Starts the rounds (once the server listens). Resolves when every configured round has ended
   * (completed; the federation then goes on serving the final adapter until stopped) or it is stopped.
   */
  run(): Promise<{ completed: boolean }>;
  /** Stops rounds, disconnects its participants and closes its log (not the HTTP server). */
  stop(): Promise<void>;
}

export async function runFederation(
  locked: LockedFederation,
  o: FederationRunOptions,
): Promise<RunningFederation> {
  const { dir, fed } = locked;
  const { config, identity, paths } = fed;
  const tightened = tightenFederationFolder(paths); // a folder made before fedit kept it owner-only
  const { ledger, records, seedChain } = await openLedger(fed);
  const names: ParticipantNames = (p) => ledger.state.participant(p)?.displayName;
  const observe = o.metrics.observer(config.id);
  const emit: Emit = (e) => {
    observe(e);
    o.onEvent?.(e, names);
  };
  if (tightened.length > 0) emit({ type: 'permissions-tightened', paths: tightened });
  const blobs = new BlobStore(paths.blobs);
  await recover(ledger, paths, blobs, emit);

  const adapters = new GlobalAdapters(blobs, records);
  // Both found in the log as read at start (the config cannot change after init).
  const configRecord = records[0]!;
  const lastClosed = records.findLast((r) => r.kind === 'round-closed');
  // The parts refer to each other through callbacks, called only once all are built (no socket
  // connects before the server listens): sessions tell the runner who came online, the runner asks
  // sessions who is connected, the transport hands each event to its part.
  const sessions = new Sessions({
    ledger,
    emit,
    needed: config.participantsPerRound.minimum,
    onAuthenticated: (socket) => rounds.announce(socket),
    onReadiness: () => rounds.nudge(),
  });
  const enrolment = new Enrolment({ dir, ledger, sessions, emit });
  const renaming = new Renaming({ federation: config.id, ledger, sessions, emit });
  // Refusals of update requests are counted by code (fedit_updates_refused_total).
  const counted = <A extends unknown[], R>(handler: (...args: A) => R) =>
    o.metrics.countRefusals(config.id, handler);
  const logProofs = new LogProofs({ federation: config.id, ledger, secretKey: identity.sign.secretKey });
  const transport = createTransport({
    namespace: o.namespace,
    federation: config.id,
    coordinatorSignKey: identity.sign.publicKey,
    challengeTtlMs: o.challengeTtlMs,
    onConnection: (socket) => sessions.track(socket),
    handlers: {
      'auth:prove': (socket, p) => sessions.prove(socket, p),
      enrol: (socket, p) => enrolment.enrol(socket, p),
      'participant:rename': (socket, p) => renaming.rename(socket, p),
      // The log's config record, signed: the settings a participant agrees to (rounds/announcement.ts).
      // With differential privacy, the last round-closed record too: what a participant reads the
      // privacy spent so far from before it joins (signed, so it is the log's own account).
      'federation:info': () => {
        const closed = config.differentialPrivacy && rounds.lastClosedRecord;
        return { record: configRecord, ...(closed && { lastClosed: closed }) };
      },
      'participant:ready': (socket, p) => sessions.setReady(socket, p),
      'adapter:get': (socket, p) => {
        sessions.participantOf(socket);
        return adapters.chunk(p.hash, p.index);
      },
      'update:begin': counted((socket, p) => uploads.begin(socket, p)),
      'update:chunk': counted((socket, p) => uploads.chunk(socket, p)),
      'update:commit': counted((socket, p) => uploads.commit(socket, p)),
      'log:head': (socket) => (sessions.participantOf(socket), { head: logProofs.head() }),
      'log:inclusion': (socket, p) => (sessions.participantOf(socket), logProofs.inclusion(p)),
      'log:consistency': (socket, p) => (sessions.participantOf(socket), logProofs.consistency(p)),
      // A secure round's phases (secure-round.ts); the open secure round or SECAGG_PHASE.
      'secagg:advertise': (socket, p) =>
        rounds.secureRound(p.round).advertise(sessions.participantOf(socket), p),
      'secagg:shares': (socket, p) => rounds.secureRound(p.round).shares(sessions.participantOf(socket), p),
      'secagg:inbox': (socket, p) => rounds.secureRound(p.round).inbox(sessions.participantOf(socket), p),
      'secagg:consistency': (socket, p) =>
        rounds.secureRound(p.round).consistency(sessions.participantOf(socket), p),
      'secagg:reveal': (socket, p) => rounds.secureRound(p.round).reveal(sessions.participantOf(socket), p),
    },
  });
  const rounds = new RoundRunner({
    config,
    ledger,
    blobs,
    adapters,
    io: transport.io,
    uploadsDir: paths.uploads,
    federationDir: paths.root,
    afterRound: () => removeOrphanBlobs(paths, blobs),
    isConnected: (p) => sessions.isConnected(p),
    readyParticipants: () => sessions.readyParticipants(),
    readyAnnouncements: () => sessions.readyAnnouncements,
    lastClosed,
    seedChain,
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
  const stopRevocations = serveRevocations({ root: dir, config, ledger, sessions, rounds, emit });
  return {
    config,
    run: () => (o.noRounds ? new Promise<{ completed: boolean }>(() => {}) : rounds.run()),
    async stop() {
      rounds.stop();
      stopRevocations();
      transport.close();
      await ledger.close();
    },
  };
}

/**
 * The round log, opened for appending, and the index rebuilt from it. The log is read (a torn last
 * line is left out) and compared with federation.json first, so an edited federation.json is
 * named field by field, its id included, and nothing is written.
 */
async function openLedger(
  fed: OpenedFederation,
): Promise<{ ledger: Ledger; records: RoundRecord[]; seedChain?: SeedChain }> {
  const { config, identity, paths } = fed;
  const records = await readFederationLog(paths);
  checkConfigMatchesLog(config, records, paths.config);
  // Checked before the log is opened for writing: without it no round can open.
  const first = records[0];
  const seedChain = readSeedChain(paths.root, first.kind === 'config' ? first.body.seedChain : undefined);
  const log = await RoundLog.open(paths.log, {
    federation: config.id,
    coordinatorSecretKey: identity.sign.secretKey,
  });
  return {
    ledger: new Ledger(log, await CoordinatorIndex.open(paths.index, records), records),
    records,
    ...(seedChain && { seedChain }),
  };
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
