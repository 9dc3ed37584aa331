// What a model answers to a dataset's prompts, scored against the dataset's responses (exact match,
// token F1, ROUGE-L: text-metrics.ts defines them). The prompt is the training tokens before the
// last response, cut exactly where training starts to learn, so an adapter is asked in the
// template and tokenization it was trained on. Decoding is greedy: the same adapter and data give
// the same answers and scores on every run.

import {
  Generator,
  IGNORE_INDEX,
  type ExecutionProvider,
  type LoadedModel,
  type Tokenizer,
} from '@fedit/kernels';
import { exampleBuilder, where, type Example, type PromptTemplate } from './data/index.ts';
import { meanScore, scoreText, type TextMetric } from './text-metrics.ts';
import type { EngineAdapter } from './adapter.ts';

export interface GenerationEvalOptions {
  model: LoadedModel;
  tokenizer: Tokenizer;
  adapter?: EngineAdapter;
  conversations: readonly Example[];
  template: PromptTemplate;
  cutoffLen: number;
  metrics: readonly TextMetric[];
  maxNewTokens: number;
  provider?: ExecutionProvider;
  threads?: number;
}

/** One example's answer and its scores. */
export interface ScoredAnswer {
  /** Where the example is (file:line). */
  source: string;
  reference: string;
  prediction: string;
  scores: Partial<Record<TextMetric, number>>;
}

export interface GenerationScores {
  /** Examples answered: those whose prompt fits in cutoffLen tokens. */
  examples: number;
  maxNewTokens: number;
  /** Each metric's mean over the examples. */
  means: Partial<Record<TextMetric, number>>;
  answers: ScoredAnswer[];
}

export async function scoreGenerations(o: GenerationEvalOptions): Promise<GenerationScores> {
  const build = exampleBuilder(o.tokenizer, {
    template: o.template,
    cutoffLen: o.cutoffLen,
    trainOnInputs: false,
  });
  const generator = await Generator.create({
    model: o.model.config,
    weights: o.model.store,
    lora: o.adapter && { config: { ...o.adapter.config, dropout: 0 }, tensors: o.adapter.tensors },
    provider: o.provider,
    threads: o.threads,
    tokenizerVocabSize: o.tokenizer.vocabSize,
  });
  const answers: ScoredAnswer[] = [];
  try {
    for (const conversation of o.conversations) {
      const built = build(conversation);
      if (!built.ok) continue; // the report already names it
      const reference = conversation.turns[conversation.turns.length - 1].content;
      const ids: number[] = [];
      const prompt = promptBeforeLastResponse(built.example.inputIds, built.example.labels);
      for await (const id of generator.generate(prompt, {
        maxNewTokens: o.maxNewTokens,
        temperature: 0,
        stopTokens: o.tokenizer.stopTokenIds,
      })) {
        ids.push(id);
      }
      const prediction = o.tokenizer.decode(ids, { skipSpecialTokens: true });
      const scores: Partial<Record<TextMetric, number>> = {};
      for (const metric of o.metrics) scores[metric] = scoreText[metric](prediction, reference);
      answers.push({ source: where(conversation), reference, prediction, scores });
    }
  } finally {
    await generator.release();
  }
  const means: Partial<Record<TextMetric, number>> = {};
  for (const metric of o.metrics) {
    const mean = meanScore(answers.map((a) => a.scores[metric] as number));
    if (mean !== undefined) means[metric] = mean;
  }
  return { examples: answers.length, maxNewTokens: o.maxNewTokens, means, answers };
}

/**
 * The tokens before the last run of learned tokens (the last response): built with trainOnInputs
 * false, every label before it that is not IGNORE_INDEX belongs to an earlier response the model
 * sees as context.
 */
export function promptBeforeLastResponse(inputIds: readonly number[], labels: readonly number[]): number[] {
  let end = labels.length;
  while (end > 0 && labels[end - 1] !== IGNORE_INDEX) end--;
  return inputIds.slice(0, end);
}
