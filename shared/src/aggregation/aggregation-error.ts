import { FeditError } from '../errors.ts';

export type AggregationErrorCode =
  /** No aggregation rule has this name. */
  | 'AGGREGATION_UNKNOWN_RULE'
  /** A rule's configuration has an unknown key or an invalid value. */
  | 'AGGREGATION_CONFIG'
  /** An update lacks a tensor the adapter has, or has one it lacks. */
  | 'AGGREGATION_TENSOR_NAME'
  /** An update's tensor has a different number of values (or shape) than the adapter's. */
  | 'AGGREGATION_SHAPE'
  /** An update's tensor holds NaN or ±Infinity. */
  | 'AGGREGATION_NOT_FINITE'
  /** A weight (example count) is not a positive integer, or the weights sum past 2^53. */
  | 'AGGREGATION_WEIGHT'
  /** A result was asked of an accumulator that has no updates. */
  | 'AGGREGATION_EMPTY'
  /** FFA-LoRA: an update's lora_A differs from the global adapter's, which every participant keeps. */
  | 'AGGREGATION_FROZEN'
  /**
   * An update's LoRA rank is below the federation's under a rule that takes only the federation's
   * rank, or its tensors are of different ranks (update-rank.ts).
   */
  | 'AGGREGATION_RANK';

/** An update, weight or rule given to aggregation is unusable; the message names the tensor. */
export class AggregationError extends FeditError {
  declare readonly code: AggregationErrorCode;

  constructor(code: AggregationErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
