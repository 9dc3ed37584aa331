export { FeditError } from './errors.ts';
export { FEDIT_VERSION } from './version.ts';
export { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, writeFileAtomic, syncDirectory } from './fs/atomic.ts';
export { isErrno, pathExists, requireFolder } from './fs/paths.ts';
export { splitAppendedLines, type FileLine, type TornLine } from './fs/lines.ts';

export { DTYPES, dtypeByteSize, isDType, type DType, type FloatDType } from './tensors/dtype.ts';
export { FLOAT_DTYPES } from './tensors/dtype.ts';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './tensors/half.ts';
export { TensorError, type TensorErrorCode } from './tensors/tensor-error.ts';
export {
  assertValidTensor,
  numel,
  tensorByteLength,
  tensorFromF32,
  tensorToF32,
  type Tensor,
} from './tensors/tensor.ts';
export type { TensorCollection } from './tensors/tensor-entries.ts';

export { SafetensorsError, type SafetensorsErrorCode } from './tensors/safetensors-error.ts';
export {
  MAX_HEADER_BYTES,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from './tensors/safetensors-header.ts';
export {
  parseSafetensors,
  parseSafetensorsHeader,
  serializeSafetensors,
  type ParsedSafetensors,
} from './tensors/safetensors.ts';
export {
  readSafetensorsFile,
  readSafetensorsHeader,
  writeSafetensorsFile,
} from './tensors/safetensors-file.ts';
export { hashTensors } from './tensors/hash.ts';

export { AdapterError, type AdapterErrorCode } from './adapter/adapter-error.ts';
export {
  adapterScale,
  makeAdapterConfig,
  parseAdapterConfig,
  targetsModule,
  toPeftAdapterConfig,
  type AdapterConfig,
  type AdapterConfigInit,
} from './adapter/config.ts';
export { parsePeftLoraTensorName, peftLoraTensorName, type LoraFactor } from './adapter/names.ts';
export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  checkAdapterTarget,
  readAdapter,
  validateAdapterTensors,
  writeAdapter,
  type AdapterMetadata,
  type AdapterModule,
  type AdapterTensorInput,
  type LoraAdapter,
  type WriteAdapterOptions,
} from './adapter/adapter.ts';

export * from './aggregation/index.ts';

export { RoundLogError, type RoundLogErrorCode } from './rounds/round-error.ts';
export {
  canonicalBytes,
  canonicalJson,
  decimalString,
  withDecimalStrings,
  type CanonicalObject,
  type CanonicalValue,
} from './rounds/canonical.ts';
export { fractionString, selectionSize, selectParticipants } from './rounds/selection.ts';
export {
  createSeedChain,
  isSeedChainValue,
  seedChainLength,
  seedChainReveal,
  seedChainStep,
  seedChainWalk,
  seedFromReveal,
  SEED_CHAIN_ROUND_FACTOR,
  SEED_CHAIN_SPARE,
  type SeedChain,
  type SeedChainCommitment,
} from './rounds/seed-chain.ts';
export {
  drawSelection,
  factorString,
  overSelectedSize,
  roundQuorum,
  type SelectionSettings,
} from './rounds/selection.ts';
export { isRecordHash, isRecordTime, parseRoundRecord } from './rounds/record-shape.ts';
export {
  recordTime,
  ROUND_RECORD_KINDS,
  roundRecordDigest,
  roundRecordHash,
  roundRecordLine,
  signRoundRecord,
  verifyRoundRecordSignature,
  ZERO_HASH,
  type ConfigBody,
  type CountedUpdate,
  type DroppedParticipant,
  type EnrolBody,
  type RenameBody,
  type RevokeBody,
  type RoundAbortedBody,
  type RoundClosedBody,
  type RoundOpenBody,
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type RoundRecordOf,
  type RuleRef,
  type Selection,
  type UnsignedRoundRecord,
  countedParticipants,
  type SecaggKeysBody,
  type SecaggSharesBody,
  type SecaggUnmaskBody,
  type SecaggConsistencyBody,
  type SecureSection,
} from './rounds/record.ts';
export {
  parseRoundLog,
  readRoundLog,
  repairRoundLog,
  scanRoundLog,
  scanRoundLogFile,
  type LogLine,
  type ParsedRoundLog,
  type TornTail,
} from './rounds/log-file.ts';
export { RoundLog, type RoundLogOptions, type RoundRecordDraft } from './rounds/log.ts';
export { FederationState, type ParticipantState, type RoundState } from './rounds/state.ts';
export type { SeedChainState } from './rounds/state.ts';
export { RoundLogChecker } from './rounds/checker.ts';
export { verifyRoundLog, verifyRoundLogLines } from './rounds/verify.ts';
export {
  EMPTY_TREE_ROOT,
  MerkleTree,
  merkleLeafHash,
  merkleNodeHash,
  verifyConsistency,
  verifyInclusion,
} from './rounds/merkle.ts';
export {
  parseTreeHead,
  recordLeaf,
  recordLeafHash,
  recordTree,
  rootBytes,
  rootString,
  signTreeHead,
  treeHeadDigest,
  verifyTreeHeadSignature,
  type SignedTreeHead,
  type UnsignedTreeHead,
} from './rounds/tree-head.ts';
export type {
  BlobLookup,
  RoundReport,
  VerificationProblem,
  VerificationProblemCode,
  VerificationReport,
  VerifyOptions,
} from './rounds/problems.ts';
export {
  ConfigError,
  LIMIT_RULES,
  aggregationRuleProblem,
  requireKnownRule,
  configDifferences,
  configHash,
  validateFederationConfig,
  type FederationConfig,
  type PromptTemplateName,
} from './federation/config.ts';
export { DEFAULT_OVER_SELECTION } from './federation/config.ts';
export { roundLearningRate } from './federation/schedule.ts';
export {
  COMMIT_HASH_PATTERN,
  MODEL_REPO_PATTERN,
  MODEL_REVISION_PATTERN,
  formatModelRepo,
  isPinnedRevision,
  parseModelRepo,
  type ModelRepo,
} from './federation/model-repo.ts';
export { MODEL_SIDE_FILES } from './federation/model-files.ts';
export { federationPaths, type FederationPaths } from './federation/paths.ts';
export {
  auditCommand,
  federationModelCard,
  writeFederationAdapter,
  type FederationResult,
} from './federation/result-adapter.ts';
export { README_FILE } from './adapter/adapter.ts';
export { TRAINER_STATE_FILE } from './adapter/adapter.ts';
export { BlobStore } from './store/blobs.ts';
export { contentHashesIn, orphanBlobs } from './store/orphans.ts';
export { auditFederation, formatAudit, type AuditReport } from './audit/audit.ts';
export { parseCoordinatorKey, PUBLIC_KEY_FILE, type CoordinatorKey } from './audit/coordinator-key.ts';
export {
  checkPinnedHead,
  readPinnedHead,
  treeOfLines,
  type LogTree,
  type PinnedHead,
  type PinnedHeadCheck,
} from './audit/log-head.ts';
export {
  canonicalPayloadHash,
  checkRecordedEnvelope,
  recordEnvelope,
  tensorSchemaOf,
  type RecordedEnvelope,
} from './rounds/envelope-record.ts';
export {
  admitCommit,
  admitEnvelope,
  envelopeRefusals,
  type Admission,
  type AdmissionCode,
  type EnvelopeClaims,
  type EnvelopeContext,
  type EnvelopeLimits,
  type EnvelopeTerms,
  type Refusal,
  type RoundView,
} from './rounds/admission.ts';
export { admitPayload, admitUpdateTensors, type TensorsContext } from './rounds/admission-payload.ts';
export { trainedFrom } from './rounds/admission-payload.ts';
export { checkAnnouncedSchema } from './rounds/admission.ts';

export { CryptoError, InviteError, type CryptoErrorCode, type InviteErrorCode } from './crypto/errors.ts';
export { bytesEqual, fromBase64url, fromHex, toBase64url, toHex } from './crypto/bytes.ts';
export {
  binaryCanonicalDigest,
  binaryCanonical,
  sha256,
  sha256Hash,
  SHA256_BYTES,
  type BinaryCanonicalValue,
} from './crypto/digest.ts';
export {
  DOMAINS,
  SIGNATURE_BYTES,
  SIGN_PUBLIC_KEY_BYTES,
  SIGN_SECRET_KEY_BYTES,
  signDigest,
  verifyDigest,
  type SignatureDomain,
} from './crypto/sign.ts';
export {
  BOX_PUBLIC_KEY_BYTES,
  BOX_SECRET_KEY_BYTES,
  FINGERPRINT_BYTES,
  IDENTITY_SEED_BYTES,
  fingerprint,
  generateIdentity,
  identityFromSecretKeys,
  parseIdentity,
  parsePublicIdentity,
  publicIdentity,
  serializeIdentity,
  serializePublicIdentity,
  type Identity,
  type KeyPair,
  type PublicIdentity,
  type SerializedIdentity,
  type SerializedPublicIdentity,
} from './crypto/identity.ts';
export {
  SEAL_OVERHEAD_BYTES,
  coordinatorUploadKey,
  openChunk,
  participantUploadKey,
  sealChunk,
  type UploadKey,
} from './crypto/seal.ts';
export {
  AUTH_CHALLENGE_TTL_MS,
  AUTH_NONCE_BYTES,
  AuthChallenge,
  authDigest,
  proveAuth,
  verifyAuthProof,
  type AuthContext,
  type AuthProof,
} from './crypto/auth.ts';
export {
  INVITE_PREFIX,
  INVITE_TOKEN_BYTES,
  coordinatorUrl,
  createInviteToken,
  formatInvite,
  parseInvite,
  type Invite,
} from './crypto/invite.ts';

export { ProtocolError, type ProtocolErrorCode } from './protocol/errors.ts';
export * from './protocol/limits.ts';
export type * from './protocol/messages.ts';
export { CLIENT_EVENTS, SERVER_EVENTS } from './protocol/messages.ts';
export { CLIENT_MESSAGES, SERVER_MESSAGES } from './protocol/messages.ts';
export * from './protocol/log-proofs.ts';
export { protocolValidator } from './protocol/validate.ts';
export * as schema from './schema/schema.ts';
export { SchemaError, type Infer, type Schema, type SchemaErrorKind } from './schema/schema.ts';
export {
  Decoder,
  Encoder,
  PacketType,
  RESERVED_EVENTS,
  msgpackParser,
  packWire,
  tensorFromWire,
  tensorToWire,
  unpackWire,
  type Packet,
  type PacketTypeValue,
  type WireTensor,
} from './protocol/codec.ts';
export { WIRE_BOUNDS, checkMsgpackBounds, type MsgpackBounds } from './protocol/msgpack-bounds.ts';
export { canonicalPayloadBytes, type AnnouncedTensor } from './protocol/payload-size.ts';
export {
  CLIENT_PAYLOAD_VALIDATORS,
  SERVER_PAYLOAD_VALIDATORS,
  ackError,
  checkChunkAgainstEnvelope,
  toWireError,
  validateAck,
  validateAdapterGet,
  validateFederationInfoRequest,
  validateAuthHello,
  validateAuthProve,
  validateClientPayload,
  unknownEvent,
  validateEnrolRequest,
  validateEnvelope,
  validateRoundClosed,
  validateRoundOpen,
  validateUnsignedEnvelope,
  validateUpdateBegin,
  validateUpdateChunk,
  validateUpdateCommit,
  validateWireError,
  type AckPayload,
} from './protocol/validate.ts';
export { envelopeDigest, envelopeId, signEnvelope, verifyEnvelope } from './protocol/envelope.ts';
export { enrolmentDigest, signEnrolment, verifyEnrolment } from './protocol/enrol.ts';
export {
  RENAME_NONCE_BYTES,
  renameDigest,
  signRename,
  verifyRename,
  type RenameFields,
} from './protocol/rename.ts';
export {
  sealedChunkMessage,
  sealedUpload,
  uploadPass,
  type SealedUpload,
  type UploadAck,
  type UploadEvent,
  type UploadOutcome,
  type UploadPassOptions,
  type UploadRequest,
} from './protocol/upload.ts';
export {
  checkHeldOutMeans,
  divideHalfEven,
  heldOutMeans,
  microsText,
  type HeldOutMeans,
} from './rounds/held-out.ts';
export { heldOutFigures, type HeldOutFigures } from './protocol/held-out-figures.ts';
export * from './rounds/announcement.ts';
export * from './privacy/index.ts';
export * from './secagg/index.ts';
export {
  DP_RULE,
  checkDpCombination,
  secureClipRangeFloor,
  dpOrders,
  type DifferentialPrivacyConfig,
} from './federation/dp-config.ts';
export { noiseSeedPath, readNoiseSeed, writeNoiseSeed } from './federation/noise-seeds.ts';
export {
  NOISE_SEED_BYTES,
  distributedDpDelta,
  dpFedAvgTarget,
  noiseSeedCommitment,
} from './aggregation/dp-step.ts';
export {
  dpOf,
  formatEpsilon,
  newAccountant,
  privacyLine,
  type PrivacySeen,
  roundFits,
  roundPrivacy,
  withRound,
  type RoundPrivacy,
} from './rounds/privacy.ts';
export * from './protocol/secagg-messages.ts';
export * from './protocol/secagg-validators.ts';
export * from './federation/secure-aggregation.ts';
export {
  aggregateSecureRound,
  secureDelta,
  secureTarget,
  secureWeight,
  type SecureRoundInputs,
} from './aggregation/secure.ts';
