// How close a generated answer is to the reference answer, defined exactly so that a script in
// another language reproduces every score:
//
//   normalise(s):  1. Unicode NFKC, then lower case (String.prototype.toLowerCase)
//                  2. every punctuation or symbol character (\p{P} or \p{S}) becomes a space
//                  3. the whole words "a", "an", "the" become a space (English articles, as SQuAD)
//                  4. runs of white space become one space; leading and trailing space is removed
//   tokens(s):     normalise(s) split on " " (an empty string has no tokens)
//
//   exact-match(p, r) = 1 if normalise(p) == normalise(r), else 0
//   token-f1(p, r)    = SQuAD's F1 (Rajpurkar et al. 2016): common = |tokens(p) ∩ tokens(r)| as
//                       multisets (each token counted min(count in p, count in r) times);
//                       0 if common = 0, else 2·P·R / (P + R) with P = common/|p|, R = common/|r|;
//                       1 if both have no tokens, 0 if only one has none
//   rouge-l(p, r)     = the LCS F-measure of Lin 2004 (ROUGE-L, sentence level): L = length of the
//                       longest common subsequence of tokens(p) and tokens(r); R = L/|r|, P = L/|p|,
//                       F = (1 + β²)·R·P / (R + β²·P) with β = 1 (as Google's rouge-score reports
//                       it), so F = 2·L / (|p| + |r|); 1 if both have no tokens, 0 if only one
//
// Every score is a binary64 in [0, 1]. A dataset's score is the arithmetic mean of its examples'
// scores, summed in dataset order, strictly sequentially, then divided by the number of examples.
// In Python: sum(scores) / len(scores) (the built-in sum, left to right).

/** The generation metrics `fedit eval --metric` offers. */
export const TEXT_METRICS = ['exact-match', 'token-f1', 'rouge-l'] as const;
export type TextMetric = (typeof TEXT_METRICS)[number];

const PUNCTUATION_OR_SYMBOL = /[\p{P}\p{S}]/gu;
const ARTICLE = /(?<![\p{L}\p{N}])(?:a|an|the)(?![\p{L}\p{N}])/gu;

export function normaliseAnswer(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(PUNCTUATION_OR_SYMBOL, ' ')
    .replace(ARTICLE, ' ')
    .replace(/\s+/gu, ' ')
    .trim();
}

export function answerTokens(text: string): string[] {
  const normalised = normaliseAnswer(text);
  return normalised === '' ? [] : normalised.split(' ');
}

export function exactMatch(prediction: string, reference: string): number {
  return normaliseAnswer(prediction) === normaliseAnswer(reference) ? 1 : 0;
}

export function tokenF1(prediction: string, reference: string): number {
  const p = answerTokens(prediction);
  const r = answerTokens(reference);
  if (p.length === 0 || r.length === 0) return p.length === r.length ? 1 : 0;
  const left = new Map<string, number>();
  for (const token of r) left.set(token, (left.get(token) ?? 0) + 1);
  let common = 0;
  for (const token of p) {
    const n = left.get(token) ?? 0;
    if (n > 0) {
      common++;
      left.set(token, n - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / r.length;
  return (2 * precision * recall) / (precision + recall);
}

export function rougeL(prediction: string, reference: string): number {
  const p = answerTokens(prediction);
  const r = answerTokens(reference);
  if (p.length === 0 || r.length === 0) return p.length === r.length ? 1 : 0;
  const lcs = longestCommonSubsequence(p, r);
  return (2 * lcs) / (p.length + r.length);
}

/** Length of the longest common subsequence, by the textbook dynamic programme in O(|a|·|b|) time. */
function longestCommonSubsequence(a: readonly string[], b: readonly string[]): number {
  let previous = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    const current = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++) {
      current[j] = x === b[j - 1] ? previous[j - 1] + 1 : Math.max(previous[j], current[j - 1]);
    }
    previous = current;
  }
  return previous[b.length];
}

export const scoreText: Record<TextMetric, (prediction: string, reference: string) => number> = {
  'exact-match': exactMatch,
  'token-f1': tokenF1,
  'rouge-l': rougeL,
};

/** The dataset's score: the sequential mean defined above. Undefined for no examples. */
export function meanScore(scores: readonly number[]): number | undefined {
  if (scores.length === 0) return undefined;
  let sum = 0;
  for (const s of scores) sum += s;
  return sum / scores.length;
}
