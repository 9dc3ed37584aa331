// Participant datasets: read whatever common instruction format a participant has, normalise it
// to conversations, render and tokenize it exactly as the trainer will see it, and report on it.

export { DatasetError, type DatasetErrorCode } from './errors.ts';
export { detectContainer, readRecords, type Container, type ReadItem, type SourceRef } from './read.ts';
export {
  DATASET_FORMATS,
  detectFormat,
  isDatasetFormat,
  normalize,
  type DatasetFormat,
  type Normalized,
} from './formats.ts';
export {
  where,
  type AssistantTurn,
  type Conversation,
  type Example,
  type SkipCode,
  type SkippedRow,
  type Turn,
  type UserTurn,
} from './types.ts';
export { conversationKey } from './conversation-key.ts';
export {
  loadDataset,
  type DatasetFileSpec,
  type DuplicateRow,
  type FileSummary,
  type LoadedDataset,
  type LoadOptions,
} from './load.ts';
export {
  ALPACA_TEMPLATE,
  PROMPT_TEMPLATES,
  alpacaFields,
  buildExamples,
  chatMessages,
  checkBuildOptions,
  exampleBuilder,
  renderAlpacaPrompt,
  type BuildOptions,
  type BuildResult,
  type BuiltExample,
  type PromptTemplate,
  type TrainingExample,
} from './prompt.ts';
export { previewExample, type PreviewSegment } from './preview.ts';
export {
  planBatches,
  sequenceBuckets,
  type Batch,
  type BatchOptions,
  type BatchPlan,
  type BatchStats,
} from './batching.ts';
export { heldOutCount, splitHeldOut, type HeldOutOptions, type HeldOutSplit } from './split.ts';
export {
  createReport,
  formatReport,
  type DatasetReport,
  type ReportParts,
  type TokenReport,
} from './report.ts';
export { prepareDataset, type PrepareOptions, type PreparedDataset } from './prepare.ts';
export { seededRandom, shuffleInPlace } from './random.ts';
