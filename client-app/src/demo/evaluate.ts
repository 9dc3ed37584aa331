// Task accuracy: the model (with an adapter, or without) answers each held-out task by greedy
// generation, and the answer counts when it matches the expected one exactly (after trimming).
// Prompts are rendered the way the data path renders a Dolly record for the chat template
// (instruction, a blank line, the context), so the model sees at evaluation exactly the prompt it
// was trained on.

import { loadCheckpoint, loadTokenizer, type ExecutionProvider, type Tokenizer } from '@fedit/kernels';
import { loadEngineAdapter } from '../core/adapter.ts';
import { greedyAnswers, type TaskAdapter } from '../core/greedy.ts';
import { chatMessages } from '../core/data/index.ts';
import { scoreAnswer, type InstructionRecord } from './tasks.ts';

export type { TaskAdapter } from '../core/greedy.ts';
export { greedyAnswers } from '../core/greedy.ts';

export interface TaskAccuracyOptions {
  modelDir: string;
  /** LoRA tensors in memory (e.g. a freshly aggregated global adapter). */
  adapter?: TaskAdapter;
  /** Or a PEFT adapter folder. */
  adapterDir?: string;
  examples: readonly InstructionRecord[];
  /** Default: the longest expected answer's tokens + 2. */
  maxNewTokens?: number;
  provider?: ExecutionProvider;
  threads?: number;
  /** Keep every generated answer in the result. */
  keepAnswers?: boolean;
}

export interface CategoryAccuracy {
  correct: number;
  total: number;
  accuracy: number;
}

export interface TaskAccuracy {
  overall: CategoryAccuracy;
  byCategory: Record<string, CategoryAccuracy>;
  answers?: { category: string; context: string; expected: string; generated: string; correct: boolean }[];
  seconds: number;
}

/** The prompt text of a task as the chat template renders it, ready for the model to answer. */
export function taskPrompt(
  tokenizer: Tokenizer,
  task: Pick<InstructionRecord, 'instruction' | 'context'>,
): string {
  const messages = chatMessages({
    turns: [
      { role: 'user', content: task.instruction, input: task.context === '' ? undefined : task.context },
      { role: 'assistant', content: '' },
    ],
  }).slice(0, 1);
  return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
}

function tally(results: { category: string; correct: boolean }[]) {
  const byCategory: Record<string, CategoryAccuracy> = {};
  let correct = 0;
  for (const r of results) {
    const c = (byCategory[r.category] ??= { correct: 0, total: 0, accuracy: 0 });
    c.total++;
    if (r.correct) {
      c.correct++;
      correct++;
    }
  }
  for (const c of Object.values(byCategory)) c.accuracy = c.total ? c.correct / c.total : 0;
  return {
    overall: { correct, total: results.length, accuracy: results.length ? correct / results.length : 0 },
    byCategory,
  };
}

export async function taskAccuracy(o: TaskAccuracyOptions): Promise<TaskAccuracy> {
  const started = performance.now();
  const model = await loadCheckpoint(o.modelDir);
  const tokenizer = await loadTokenizer(o.modelDir);
  let adapter = o.adapter;
  if (!adapter && o.adapterDir) {
    const a = await loadEngineAdapter(o.adapterDir, model);
    adapter = { config: a.config, tensors: a.tensors };
  }
  const maxNewTokens =
    o.maxNewTokens ?? Math.max(1, ...o.examples.map((e) => tokenizer.encode(e.response).length)) + 2;
  const prompts = o.examples.map((e) => taskPrompt(tokenizer, e));
  const generated = await greedyAnswers(model, tokenizer, prompts, {
    maxNewTokens,
    adapter,
    threads: o.threads,
  });
  const results = o.examples.map((e, i) => ({
    category: e.category,
    context: e.context,
    expected: e.response,
    generated: generated[i],
    correct: scoreAnswer(e.category, e.response, generated[i]),
  }));
  return {
    ...tally(results),
    ...(o.keepAnswers ? { answers: results } : {}),
    seconds: (performance.now() - started) / 1000,
  };
}
