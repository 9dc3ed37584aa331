// The whole path from the files a participant points at to what the trainer consumes, with the
// validation report: load -> held-out split -> prompt template and tokens -> batches.

import type { Tokenizer } from '@fedit/kernels';
import { DatasetError } from './errors.ts';
import { planBatches, sequenceBuckets, type BatchPlan } from './batching.ts';
import { loadDataset, type DatasetFileSpec, type LoadOptions } from './load.ts';
import { buildExamples, type BuildOptions, type TrainingExample } from './prompt.ts';
import { createReport, type DatasetReport } from './report.ts';
import { splitHeldOut, type HeldOutOptions } from './split.ts';
import type { Example } from './types.ts';

export interface PrepareOptions {
  load?: LoadOptions;
  /** Hold out part of the data for evaluation (split before tokenizing, by conversation). */
  heldOut?: HeldOutOptions;
  /** Tokenize with the model's tokenizer; without it the report covers records only. */
  tokens?: BuildOptions & { tokenizer: Tokenizer };
  /** Plan the training batches (needs `tokens`); buckets default to sequenceBuckets(cutoffLen). */
  batching?: { batchSize: number; seed: number | string; buckets?: readonly number[]; pack?: boolean };
  /** Longest listing of rows in the report. Default 20. */
  maxListed?: number;
}

export interface PreparedDataset {
  /** Conversations for training and for evaluation (all of them in `train` without heldOut). */
  conversations: { train: Example[]; heldOut: Example[] };
  /** Token rows, when `tokens` was given. */
  rows?: { train: TrainingExample[]; heldOut: TrainingExample[] };
  /** Training batches, when `batching` was given. */
  batches?: BatchPlan;
  report: DatasetReport;
}

export async function prepareDataset(
  files: readonly (string | DatasetFileSpec)[],
  options: PrepareOptions = {},
): Promise<PreparedDataset> {
  if (options.batching && !options.tokens) {
    throw new DatasetError(
      'DATASET_OPTIONS',
      'batches are planned from token rows: give the tokenizer options too',
    );
  }
  const loaded = await loadDataset(files, options.load);
  const split = options.heldOut
    ? splitHeldOut(loaded.examples, options.heldOut)
    : { train: loaded.examples, heldOut: [] };
  const prepared: PreparedDataset = {
    conversations: split,
    report: createReport({ loaded, maxListed: options.maxListed }),
  };
  if (!options.tokens) {
    if (options.heldOut)
      prepared.report.heldOut = { train: split.train.length, heldOut: split.heldOut.length };
    return prepared;
  }
  const { tokenizer, ...buildOptions } = options.tokens;
  const train = buildExamples(split.train, tokenizer, buildOptions);
  const heldOut = buildExamples(split.heldOut, tokenizer, buildOptions);
  prepared.rows = { train: train.examples, heldOut: heldOut.examples };
  if (options.batching) {
    const { buckets, ...rest } = options.batching;
    prepared.batches = planBatches(train.examples, {
      ...rest,
      buckets: buckets ?? sequenceBuckets(buildOptions.cutoffLen),
    });
  }
  prepared.report = createReport({
    loaded,
    built: {
      examples: [...train.examples, ...heldOut.examples],
      skipped: [...train.skipped, ...heldOut.skipped],
      options: buildOptions,
    },
    heldOut: options.heldOut ? { train: train.examples.length, heldOut: heldOut.examples.length } : undefined,
    batches: prepared.batches?.stats,
    maxListed: options.maxListed,
  });
  return prepared;
}
