// @fedit/coordinator: federation directories, invites, the socket.io coordinator and the audit.
export {
  validateFederationConfig,
  configHash,
  ConfigError,
  LIMIT_RULES,
  aggregationRuleProblem,
  type FederationConfig,
} from './federation/config.ts';
export {
  initFederation,
  openFederationDir,
  openFederationDirChecked,
  federationPaths,
  DEFAULT_SETTINGS,
  type FederationSettings,
  type FederationStart,
  type FederationPaths,
} from './federation/dir.ts';
export { createInvite, readInvites, type InviteState } from './federation/invites.ts';
export { revokeParticipant } from './federation/revoke.ts';
export { lockFederation, LOCK_FILE, type FederationLock } from './federation/lock.ts';
export { startCoordinator, type CoordinatorOptions, type RunningCoordinator } from './server/coordinator.ts';
export type { CoordinatorEvent } from './server/events.ts';
// The hot-path timers, for the federation benchmark (test/bench/federation/).
export { profileSnapshot } from './server/profile.ts';
export { BlobStore } from './store/blobs.ts';
export { CoordinatorIndex, type ParticipantEntry, type RoundSummary } from './store/index-db.ts';
export { auditFederation, formatAudit, type AuditReport } from './audit.ts';
