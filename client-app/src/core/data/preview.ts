// A training row shown to a person (the app's data screen): the text in runs of tokens the loss
// sees and tokens it only reads, so a participant can check that the model learns the responses
// and not the prompts.

import { IGNORE_INDEX, type TokenRow, type Tokenizer } from '@fedit/kernels';

/** A run of a preview: consecutive tokens that are all trained on, or all only read. */
export interface PreviewSegment {
  text: string;
  /** True when the loss sees these tokens (what the model learns to write). */
  trained: boolean;
}

/**
 * The row as text in runs of trained and untrained tokens, for previews. Structured rather than
 * marked inside the text: any marker characters could also occur in the data itself (« » in French).
 */
export function previewExample(example: TokenRow, tokenizer: Tokenizer): PreviewSegment[] {
  const segments: PreviewSegment[] = [];
  let run: number[] = [];
  let trained = false;
  const flush = () => {
    if (run.length === 0) return;
    segments.push({ text: tokenizer.decode(run), trained });
    run = [];
  };
  example.inputIds.forEach((id, t) => {
    const isTrained = example.labels[t] !== IGNORE_INDEX;
    if (isTrained !== trained) {
      flush();
      trained = isTrained;
    }
    run.push(id);
  });
  flush();
  return segments;
}
