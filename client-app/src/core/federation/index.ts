// The participant's side of a federation: storage, connection, joining and taking part in rounds.
// Nothing here prints; the CLI (`fedit client ...`) and the desktop app present the events.

export { FederationError, isTransient, type FederationErrorCode } from './errors.ts';
export {
  parseFederationInfo,
  parseFederationSettings,
  type FederationInfoParsed,
  type FederationSettings,
  type PromptTemplateName,
} from './settings.ts';
export {
  ADAPTERS_DIR,
  FEDERATIONS_DIR,
  IDENTITY_FILE,
  ROUNDS_DIR,
  adapterCachePath,
  ensurePrivateDir,
  listMemberships,
  loadOrCreateIdentity,
  membershipPath,
  readIdentity,
  readMembership,
  removeMembership,
  requireIdentity,
  resolveHome,
  roundDir,
  selectMembership,
  writeMembership,
  writePrivateFile,
  type Membership,
} from './store.ts';
export { parseMembership } from './membership-file.ts';
export {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  FederationConnection,
} from './connection.ts';
export { membershipConnection } from './join.ts';
export type {
  AuthMode,
  AuthenticatedEvent,
  ConnectionEvents,
  ConnectionOptions,
  ConnectionState,
} from './connection-types.ts';
export { sayReady, waitingWords } from './readiness.ts';
export {
  checkDisplayName,
  defaultDisplayName,
  enrol,
  inspectInvite,
  joinFederation,
  readInvite,
  samePublicIdentity,
  type InviteInspection,
  type JoinOptions,
  type JoinResult,
} from './join.ts';
export {
  ADAPTER_CACHE_KEEP,
  cacheAdapter,
  checkAdapterBytes,
  downloadAdapter,
  readCachedAdapter,
} from './adapters.ts';
export {
  buildUpdate,
  dropPendingUpload,
  loadPendingUpload,
  savePendingUpload,
  type PendingUpload,
} from './update.ts';
export {
  type ParticipantEvents,
  type ParticipantStatus,
  type ProgressEvent,
  type RoundHistoryEntry,
  type StatusEvent,
} from './events.ts';
export {
  DISK_LOADER,
  checkBaseModel,
  type ParticipantOptions,
  type TrainingInputsLoader,
} from './session.ts';
export { renameParticipant, type RenameOptions } from './rename.ts';
export {
  keepRoundReceipt,
  keptReceiptsLine,
  readReceipts,
  receiptsLine,
  receiptsPath,
  type Receipt,
  type VerifyReport,
} from './receipts.ts';
export { verifyMembershipLog, type VerifyOptions } from './verify.ts';
export { participantSeed } from './round.ts';
export { connectionUploadRequest, type RoundIOContext } from './round-io.ts';
// The secure phases without a model: the federation benchmark runs them with random deltas.
export {
  PhaseInbox,
  runSecureRound,
  type ContributionSource,
  type SecureContribution,
  type SecureRoundIO,
} from './secure-round.ts';
export { Participant, type FinalAdapter, type ParticipantResult } from './participant.ts';
export { exportCachedAdapter, type ExportCachedOptions, type ExportedCached } from './export.ts';
export { RESULTS_DIR, readRoundResults, recordRoundResult, type RoundResult } from './results.ts';
