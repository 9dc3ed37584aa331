// The answer scores of `fedit eval --metric`, on cases worked by hand from the definitions in
// text-metrics.ts (and, for SQuAD's F1 and ROUGE-L, the numbers their reference scripts give).

import test from 'ava';
import {
  answerTokens,
  exactMatch,
  meanScore,
  normaliseAnswer,
  rougeL,
  tokenF1,
} from '../src/core/text-metrics.ts';

test('normalisation lower-cases, drops punctuation, symbols and English articles, and collapses space', (t) => {
  t.is(normaliseAnswer('  The Eiffel-Tower, in PARIS!  '), 'eiffel tower in paris');
  t.is(normaliseAnswer('An apple a day'), 'apple day');
  t.is(normaliseAnswer('theory and another'), 'theory and another', 'articles only as whole words');
  t.is(normaliseAnswer('Ｆｕｌｌ width $5'), 'full width 5', 'NFKC first; $ is a symbol');
  t.deepEqual(answerTokens('  ...  '), []);
  t.deepEqual(answerTokens('Café au lait'), ['café', 'au', 'lait']);
});

test('exact match compares the normalised strings', (t) => {
  t.is(exactMatch('Paris.', 'paris'), 1);
  t.is(exactMatch('the answer is 4', 'answer is 4'), 1);
  t.is(exactMatch('4', '5'), 0);
  t.is(exactMatch('', '!'), 1, 'both normalise to nothing');
});

test("token F1 is SQuAD's multiset overlap", (t) => {
  // p = [cat, sat, on, mat], r = [cat, sat, on, red, mat, today]: common 4, P = 1, R = 4/6
  t.is(
    tokenF1('the cat sat on the mat', 'the cat sat on the red mat today'),
    (2 * 1 * (4 / 6)) / (1 + 4 / 6),
  );
  // a repeated token counts as often as it occurs in both: p = [yes, yes, yes], r = [yes]
  t.is(tokenF1('yes yes yes', 'yes'), (2 * (1 / 3) * 1) / (1 / 3 + 1));
  t.is(tokenF1('blue', 'red'), 0);
  t.is(tokenF1('', 'the'), 1, 'both empty after normalisation');
  t.is(tokenF1('', 'red'), 0);
});

test('ROUGE-L is the LCS F-measure with beta 1: 2 LCS / (|p| + |r|)', (t) => {
  // Lin 2004's example, r = "police killed the gunman"; "the" is dropped as an article, so
  // [police, kill, gunman] vs [police, killed, gunman]: LCS 2
  t.is(rougeL('police kill the gunman', 'police killed the gunman'), (2 * 2) / (3 + 3));
  // "the gunman kill police": [gunman, kill, police] vs [police, killed, gunman]: LCS 1
  t.is(rougeL('the gunman kill police', 'police killed the gunman'), (2 * 1) / (3 + 3));
  // order matters for ROUGE-L, not for token F1
  t.is(tokenF1('y x', 'x y'), 1);
  t.is(rougeL('y x', 'x y'), 0.5);
  t.is(rougeL('p q r s', 'p x r y s'), (2 * 3) / (4 + 5));
  t.is(rougeL('b a', 'a b'), 1, '"a" is an article: both are [b]');
  t.is(rougeL('', ''), 1);
  t.is(rougeL('x', ''), 0);
});

test('a dataset score is the sequential mean; none for no examples', (t) => {
  t.is(meanScore([1, 0, 0.5, 0.25]), 1.75 / 4);
  t.is(meanScore([0.1, 0.2, 0.3]), (0.1 + 0.2 + 0.3) / 3);
  t.is(meanScore([]), undefined);
});
