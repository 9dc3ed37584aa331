// The aggregation rules and the arithmetic around them (clipping, server optimisers, SCAFFOLD,
// the LoRA product space), as @fedit/shared exports them; ../index.ts re-exports this file.

export { AggregationError, type AggregationErrorCode } from './aggregation-error.ts';
export {
  compareParticipantIds,
  compareUtf8,
  type AggregationConfig,
  type AggregationConfigValue,
  type AggregationRule,
  type UpdateValues,
  type WeightedUpdate,
} from './rule.ts';
export { WeightedMeanAccumulator, toFloat32, type Accumulator } from './weighted-mean.ts';
export {
  parseRuleSettings,
  ruleConfigOf,
  type ClippingSettings,
  type RuleSettings,
  type ServerOptimizerSettings,
} from './rule-settings.ts';
export { serverStateTensors, serverStep } from './server-optimizer.ts';
export {
  ControlStep,
  controlName,
  scaffoldTermsOf,
  splitServerState,
  type ScaffoldRoundTerms,
} from './scaffold.ts';
export {
  adapterSchema,
  tensorsFromValues,
  tensorValues,
  validateUpdate,
  type AdapterSchema,
  type TensorValues,
} from './schema.ts';
export {
  aggregationRule,
  aggregationRuleNames,
  ruleRefFor,
  DEFAULT_AGGREGATION_RULE,
  fedavgUniformRule,
  feditRule,
} from './rules.ts';
export {
  aggregateContributions,
  aggregateRound,
  checkFrozenA,
  type Contribution,
  type RoundAggregate,
  type RoundInputs,
} from './aggregate.ts';
export { updateNorm } from './norm.ts';
export { adaptiveClipBound, clipScale, clipToward, type Values64 } from './clipping.ts';
export { coordinateMedian, krumScores, multiKrumMean, multiKrumSelect, trimmedMean } from './robust.ts';
export { trimCount } from './robust.ts';
export {
  applyQ,
  explicitQ,
  householderQr,
  jacobiSvd,
  JACOBI_MAX_SWEEPS,
  JACOBI_TOLERANCE,
  type QrFactors,
  type Reflector,
  type SvdFactors,
} from './linalg.ts';
export { loraModules, schemaAtRank, type LoraModule } from './lora-modules.ts';
export {
  globalAtRank,
  lowerRankOf,
  lowerRankOfValues,
  ruleTakesLowerRanks,
  schemaForRank,
  updateRankOf,
} from './update-rank.ts';
export {
  FACTOR_SPLITS,
  productSvd,
  productSvdAdapter,
  truncateAdapterRank,
  type FactorPair,
  type FactorSplit,
  type ProductSvdUpdate,
} from './product-svd.ts';
