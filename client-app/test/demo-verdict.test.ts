// The demo's closing sentence follows from its table: overall against pooled and the best
// participant alone, and every category on which a participant alone beats the federated adapter
// (a 3-round run once said "federated beats every local-only adapter on all categories" while
// scoring 0% on a category where a local adapter had 92%).

import test from 'ava';
import { demoVerdict } from '../src/demo/demo.ts';
import type { TaskAccuracy } from '../src/demo/evaluate.ts';

/** Accuracies per category out of 100 tasks each; overall is their mean. */
function accuracy(byCategory: Record<string, number>): TaskAccuracy {
  const entries = Object.entries(byCategory).map(
    ([c, a]) => [c, { correct: a, total: 100, accuracy: a / 100 }] as const,
  );
  const correct = entries.reduce((s, [, v]) => s + v.correct, 0);
  const total = 100 * entries.length;
  return {
    overall: { correct, total, accuracy: correct / total },
    byCategory: Object.fromEntries(entries),
    seconds: 0,
  };
}

const local = (name: string, byCategory: Record<string, number>) => ({
  name,
  categories: Object.keys(byCategory),
  accuracy: accuracy(byCategory),
});

test('a category on which a participant alone does better is named with both figures', (t) => {
  const verdict = demoVerdict(
    accuracy({ reverse: 0, upper: 100, double: 100 }),
    accuracy({ reverse: 95, upper: 100, double: 100 }),
    [
      local('alice', { reverse: 92, upper: 10, double: 0 }),
      local('bob', { reverse: 0, upper: 60, double: 40 }),
    ],
  );
  t.is(
    verdict,
    'the federated adapter is 33 points above the best participant alone and 31 points below pooled training (all on the held-out tasks of every category); but on reverse, alice alone scores 92% against its 0%',
  );
});

test('when no participant alone beats it on any category, the sentence says so', (t) => {
  const verdict = demoVerdict(accuracy({ reverse: 90, upper: 100 }), accuracy({ reverse: 90, upper: 100 }), [
    local('alice', { reverse: 90, upper: 0 }),
    local('bob', { reverse: 0, upper: 100 }),
  ]);
  t.regex(verdict, /level with pooled training/);
  t.regex(verdict, /; no participant alone does better on any category$/);
});
