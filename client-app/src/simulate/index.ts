// Simulating a federation on this machine: N participants on loopback through the real protocol,
// seeded end to end, against pooled training and each participant alone. `fedit simulate` and
// `npm run bench -- learning` run it.

export { defaultDemoCacheDir, ensureDemoBaseModel } from '../demo/base-model.ts';
export {
  learningBenchJson,
  runLearningBench,
  type LearningBenchOptions,
  type LearningBenchResult,
  type RuleChoice,
} from './bench.ts';
export {
  baseModelFamilies,
  builtinFamilyCategories,
  builtinTaskDataset,
  fileDataset,
  readInstructionFile,
  type BuiltinDatasetOptions,
  type BuiltinFamilyChoice,
  type EvaluationSet,
  type FileDatasetOptions,
  type SimulationDataset,
} from './dataset.ts';
export {
  participantIdentitySeed,
  runLoopbackFederation,
  type ClosedRound,
  type FederationMember,
  type TookPart,
  type LoopbackFederationOptions,
} from './federation.ts';
export { runAdversary, tamper, type AdversaryOptions, type Attack } from './adversary.ts';
export {
  BUILTIN_DATASETS,
  parseAttack,
  parseDataset,
  parseRanks,
  parseRules,
  parseSplit,
  seedList,
} from './options.ts';
export { readSettingsFile } from '../operator/settings-patch.ts';
export {
  compact,
  formatSummary,
  spread,
  summarize,
  type CompactAccuracy,
  type EvaluationSummary,
  type RoundSpread,
  type SeedRuns,
  type Spread,
  type SummaryRow,
} from './report.ts';
export { RULE_PRESETS, mergeSettings, rulePreset, simulationSettings } from './presets.ts';
export {
  categoriesOf,
  dirichlet,
  splitByCategory,
  type ParticipantShard,
  type SplitOptions,
  type SplitSpec,
} from './split.ts';
export {
  runBaselines,
  runFederated,
  runSimulation,
  scoredSets,
  simulationPlan,
  summarizeShards,
  type Accuracies,
  type Baselines,
  type FederatedRound,
  type FederatedRun,
  type ShardSummary,
  type SimulationOptions,
  type SimulationResult,
  type TrainedBaseline,
} from './simulation.ts';
export { DEMO_ROUNDS } from '../demo/demo-rounds.ts';
