// Loss and perplexity of a model (with or without an adapter) on an instruction dataset, on the
// same tokens training would see (same template, cut-off and response-only labels); and, when
// asked for metrics, its greedy answers to the dataset's prompts scored against the responses
// (generation-eval.ts). The one evaluation path of `fedit eval` and of a participant's held-out
// evaluation.

import {
  DEFAULT_ADAMW,
  Trainer,
  loadCheckpoint as loadModel,
  loadTokenizer,
  type ExecutionProvider,
  type LoadedModel,
  type LoraConfig,
  type TokenRow,
} from '@fedit/kernels';
import {
  prepareDataset,
  sequenceBuckets,
  type DatasetFormat,
  type DatasetReport,
  type PromptTemplate,
} from './data/index.ts';
import { loadEngineAdapter } from './adapter.ts';
import { evaluateRows, TrainingSetupError } from './train/local-training.ts';
import { scoreGenerations, type GenerationScores } from './generation-eval.ts';
import type { TextMetric } from './text-metrics.ts';

export interface EvaluateOptions {
  modelDir: string;
  adapterDir?: string;
  dataFiles: string[];
  format?: DatasetFormat;
  /** Default: the template the adapter was trained with, else alpaca. */
  template?: PromptTemplate;
  cutoffLen: number;
  trainOnInputs?: boolean;
  batchSize: number;
  provider?: ExecutionProvider;
  threads?: number;
  allowOtherBase?: boolean;
  /** Generation metrics to compute on the model's greedy answers; none: loss only. */
  metrics?: readonly TextMetric[];
  /** Longest answer generated for the metrics, in tokens. Default 128. */
  maxNewTokens?: number;
}

export interface EvaluateResult {
  loss: number;
  perplexity: number;
  tokens: number;
  examples: number;
  template: PromptTemplate;
  report: DatasetReport;
  /** The answers and their scores, when metrics were asked for. */
  generation?: GenerationScores;
}

export async function evaluateDataset(o: EvaluateOptions): Promise<EvaluateResult> {
  const model = await loadModel(o.modelDir);
  const tokenizer = await loadTokenizer(o.modelDir);
  const adapter = o.adapterDir ? await loadEngineAdapter(o.adapterDir, model, o.allowOtherBase) : undefined;
  const template = o.template ?? (adapter?.template === 'chat' ? 'chat' : 'alpaca');
  const prepared = await prepareDataset(
    o.dataFiles.map((path) => (o.format ? { path, format: o.format } : path)),
    {
      tokens: { tokenizer, template, cutoffLen: o.cutoffLen, trainOnInputs: o.trainOnInputs },
    },
  );
  const rows = prepared.rows!.train;
  if (rows.length === 0) throw new TrainingSetupError('no usable examples to evaluate (see the report)');
  const r = await evaluateAdapterRows(model, rows, {
    lora: adapter?.config,
    tensors: adapter?.tensors,
    cutoffLen: o.cutoffLen,
    batchSize: o.batchSize,
    provider: o.provider,
    threads: o.threads,
  });
  const result: EvaluateResult = { ...r, examples: rows.length, template, report: prepared.report };
  if (o.metrics?.length) {
    result.generation = await scoreGenerations({
      model,
      tokenizer,
      adapter,
      conversations: prepared.conversations.train,
      template,
      cutoffLen: o.cutoffLen,
      metrics: o.metrics,
      maxNewTokens: o.maxNewTokens ?? 128,
      provider: o.provider,
      threads: o.threads,
    });
  }
  return result;
}

/**
 * Loss and perplexity of `model` with LoRA tensors `tensors` (or none) on token rows, on an
 * evaluation-only trainer of its own: what `fedit eval` reports, and what a participant measures
 * of each global adapter on its held-out slice (federation/held-out.ts).
 */
export async function evaluateAdapterRows(
  model: LoadedModel,
  rows: readonly TokenRow[],
  o: {
    lora?: LoraConfig;
    tensors?: ReadonlyMap<string, Float32Array>;
    cutoffLen: number;
    batchSize: number;
    provider?: ExecutionProvider;
    threads?: number;
  },
): Promise<{ loss: number; perplexity: number; tokens: number }> {
  const buckets = sequenceBuckets(o.cutoffLen);
  const trainer = await Trainer.create({
    model: model.config,
    weights: model.store,
    lora: o.lora && { ...o.lora, dropout: 0 },
    initial: o.tensors,
    batch: o.batchSize,
    seq: Math.max(...buckets),
    seqBuckets: buckets,
    optimizer: DEFAULT_ADAMW,
    seed: 0,
    evalOnly: true,
    provider: o.provider,
    threads: o.threads,
  });
  try {
    return await evaluateRows(trainer, rows, o.batchSize);
  } finally {
    await trainer.release();
  }
}
