// Greedy generation of answers, with an adapter or without: what `fedit`'s task accuracy
// (demo/evaluate.ts) and a participant's exact-match figure on its held-out slice
// (federation/held-out.ts) both score.

import { Generator, type LoadedModel, type LoraConfig, type Tokenizer } from '@fedit/kernels';

export interface TaskAdapter {
  config: LoraConfig;
  tensors: ReadonlyMap<string, Float32Array>;
}

/** Greedy answer of one prompt (token ids), decoded, special tokens skipped. */
async function greedy(
  generator: Generator,
  tokenizer: Tokenizer,
  ids: number[],
  maxNewTokens: number,
): Promise<string> {
  const out: number[] = [];
  for await (const token of generator.generate(ids, { maxNewTokens, stopTokens: tokenizer.stopTokenIds }))
    out.push(token);
  return tokenizer.decode(out, { skipSpecialTokens: true });
}

/**
 * Greedy answers of raw prompts (no template): for checking a base model on its pretraining
 * format; a prompt given as token ids is used as it is (a held-out row's prompt tokens).
 */
export async function greedyAnswers(
  model: LoadedModel,
  tokenizer: Tokenizer,
  prompts: readonly (string | readonly number[])[],
  o: { maxNewTokens: number; adapter?: TaskAdapter; threads?: number; addSpecialTokens?: boolean },
): Promise<string[]> {
  const generator = await Generator.create({
    model: model.config,
    weights: model.store,
    lora: o.adapter && { config: { ...o.adapter.config, dropout: 0 }, tensors: o.adapter.tensors },
    threads: o.threads,
    tokenizerVocabSize: tokenizer.vocabSize,
  });
  try {
    const answers: string[] = [];
    for (const p of prompts) {
      const ids =
        typeof p === 'string'
          ? tokenizer.encode(p, { addSpecialTokens: o.addSpecialTokens ?? false })
          : [...p];
      answers.push(await greedy(generator, tokenizer, ids, o.maxNewTokens));
    }
    return answers;
  } finally {
    await generator.release();
  }
}
