// @fedit/kernels: the compute engine. Model configs and checkpoints, LoRA, the training-graph
// compiler and the sessions that run it, training, evaluation and generation.

export {
  PRESETS,
  SUPPORTED_MODEL_TYPES,
  parseLlamaConfig,
  toHfConfig,
  ModelConfigError,
  type LlamaConfig,
} from './model/config.ts';
export {
  loadCheckpoint,
  writeHfCheckpoint,
  expectedTensorShapes,
  CheckpointError,
  type LoadedModel,
} from './model/checkpoint.ts';
export {
  LORA_TARGETS,
  validateLoraConfig,
  loraScale,
  loraTensorName,
  loraTensorSpecs,
  initLoraTensors,
  targetShape,
  LoraConfigError,
  type LoraConfig,
  type LoraTarget,
  type LoraTensorSpec,
} from './model/lora.ts';
export {
  openWeightStore,
  writeWeightStore,
  readWeight,
  type WeightStore,
  type NamedTensor,
} from './model/weights.ts';
export { randomLlamaTensors, uniformSampler, normalSampler } from './model/random.ts';
export {
  availableProviders,
  createSession,
  EXECUTION_PROVIDERS,
  ProviderUnavailableError,
  type ExecutionProvider,
  type CompiledSession,
} from './runtime/session.ts';
export { makeBatch, IGNORE_INDEX, type TokenRow } from './train/batch.ts';
export {
  buildStepGraph,
  trainableSpecs,
  type StepKind,
  type StepGraphOptions,
  type GradientTerms,
} from './train/graphs.ts';
export { DEFAULT_ADAMW, type AdamWConfig } from './train/optimizer.ts';
export {
  learningRate,
  validateSchedule,
  ScheduleError,
  type LrSchedule,
  type ScheduleKind,
} from './train/schedule.ts';
export { Trainer, type TrainerOptions, type TrainerState, type StepResult } from './train/trainer.ts';
export { TrainingOptionsError, type FederatedTrainingOptions } from './train/federated-options.ts';
export { Generator, sampleToken, type GeneratorOptions, type SamplingOptions } from './generate/generator.ts';
export { buildForwardGraph } from './generate/graph.ts';
export type { Tokenizer, ChatMessage } from './tokenizer/types.ts';
export { loadTokenizer, createTokenizer, TokenizerError, type TokenizerFiles } from './tokenizer/load.ts';
export {
  compileChatTemplate,
  CHATML_TEMPLATE,
  ChatTemplateError,
  type ChatTemplate,
  type RenderOptions,
} from './tokenizer/chat-template.ts';
export {
  writeCharTokenizer,
  charTokenizerFiles,
  ASCII_ALPHABET,
  CHAR_SPECIAL_TOKENS,
  type CharTokenizerOptions,
  type CharTokenizerInfo,
  type CharTokenizerFiles,
} from './tokenizer/char-tokenizer.ts';
export {
  mergeAdapter,
  mergeLoraInto,
  planMerge,
  MergeError,
  MERGE_DTYPES,
  DEFAULT_MAX_SHARD_BYTES,
  TOKENIZER_FILES,
  type MergeDType,
  type MergeErrorCode,
  type MergeOptions,
  type MergeResult,
} from './model/merge.ts';
