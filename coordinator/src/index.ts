// @fedit/coordinator: federation directories, invites and the socket.io coordinator. The federation
// config, folder layout, blob store and audit live in @fedit/shared (an auditor needs nothing else):
// import them from there.
export {
  initFederation,
  openFederationDir,
  openFederationDirChecked,
  DEFAULT_SETTINGS,
  type FederationSettings,
  type FederationStart,
} from './federation/dir.ts';
export { createInvite, readInvites, type InviteState } from './federation/invites.ts';
export { exportRoundAdapter, type ExportRoundOptions, type ExportedRound } from './federation/export.ts';
export { revokeParticipant } from './federation/revoke.ts';
export { lockFederation, LOCK_FILE, type FederationLock } from './federation/lock.ts';
export {
  startCoordinator,
  startServer,
  type CoordinatorOptions,
  type RunningCoordinator,
  type RunningServer,
  type ServeOptions,
  type ServedFederation,
} from './server/serve.ts';
export { DEFAULT_GRACE_MS, type TlsFiles, type Readiness } from './server/http-server.ts';
export type { CoordinatorEvent, ParticipantNames } from './server/events.ts';
// A secure round's coordinator side: exported so that a test can make a real coordinator lie.
export { SecureRound, type SecurePhase } from './server/secure-round.ts';
// The hot-path timers, for the federation benchmark (test/bench/federation/).
export { profileSnapshot } from './server/profile.ts';
export { CoordinatorIndex, type ParticipantEntry, type RoundSummary } from './store/index-db.ts';
export {
  federationStatus,
  formatFederationStatus,
  heldOutText,
  statusOfRecords,
  type FederationStatus,
  type RoundTimelineEntry,
} from './federation/status.ts';
