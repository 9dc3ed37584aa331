// The held-out split: seeded, deterministic, disjoint, the size asked for, independent of record
// order, and never separating copies of one conversation.

import test from 'ava';
import {
  DatasetError,
  heldOutCount,
  loadDataset,
  splitHeldOut,
  type Example,
} from '../src/core/data/index.ts';
import { seededRandom, shuffleInPlace } from '../src/core/data/random.ts';
import { jsonl, tempDir, writeData } from './fixtures/data-helpers.ts';

function examples(count: number): Example[] {
  return Array.from({ length: count }, (_, i) => ({
    turns: [
      { role: 'user', content: `Question ${i}?` },
      { role: 'assistant', content: `Answer ${i}.` },
    ],
    source: { file: 'mem.jsonl', line: i + 1 },
  }));
}

const lines = (xs: readonly Example[]) => xs.map((e) => e.source.line);

test('the same examples and seed give the same split; another seed another one', (t) => {
  const data = examples(200);
  const a = splitHeldOut(data, { fraction: 0.1, seed: 42 });
  const b = splitHeldOut(data, { fraction: 0.1, seed: 42 });
  t.deepEqual(lines(a.heldOut), lines(b.heldOut));
  t.deepEqual(lines(a.train), lines(b.train));
  const c = splitHeldOut(data, { fraction: 0.1, seed: 43 });
  t.notDeepEqual(lines(a.heldOut), lines(c.heldOut));
});

test('train and held-out are disjoint, cover everything, keep file order and have the size asked for', (t) => {
  const data = examples(97);
  for (const options of [{ fraction: 0.1 }, { fraction: 0.5 }, { count: 1 }, { count: 96 }]) {
    const split = splitHeldOut(data, { ...options, seed: 'x' });
    const held = new Set(lines(split.heldOut));
    t.is(split.heldOut.length, heldOutCount(97, { ...options, seed: 'x' }));
    t.true(lines(split.train).every((l) => !held.has(l)));
    t.deepEqual(
      [...lines(split.train), ...held].sort((x, y) => x - y),
      lines(data),
    );
    t.deepEqual(
      lines(split.heldOut),
      [...lines(split.heldOut)].sort((x, y) => x - y),
    );
  }
  t.is(heldOutCount(97, { fraction: 0.1, seed: 0 }), 10);
  t.is(heldOutCount(5, { fraction: 0.01, seed: 0 }), 1);
});

test('reordering the file does not change which conversations are held out', (t) => {
  const data = examples(150);
  const shuffled = shuffleInPlace([...data], seededRandom('reorder'));
  const content = (xs: readonly Example[]) => xs.map((e) => e.turns[0].content).sort();
  const a = splitHeldOut(data, { count: 15, seed: 1 });
  const b = splitHeldOut(shuffled, { count: 15, seed: 1 });
  t.deepEqual(content(a.heldOut), content(b.heldOut));
  // adding records changes the held-out set only by the new records that rank before old ones
  const grown = splitHeldOut([...data, ...examples(160).slice(150)], { count: 16, seed: 1 });
  const grownHeld = new Set(content(grown.heldOut));
  t.true(content(a.heldOut).filter((c) => grownHeld.has(c)).length >= 14);
});

test('copies of one conversation land on the same side', async (t) => {
  const dir = await tempDir(t);
  const records = Array.from({ length: 60 }, (_, i) => ({ instruction: `Q${i % 20}`, output: `A${i % 20}` }));
  const loaded = await loadDataset([await writeData(dir, 'dups.jsonl', jsonl(records))]);
  t.is(loaded.duplicates.length, 40);
  for (const seed of [1, 2, 3, 4, 5]) {
    const split = splitHeldOut(loaded.examples, { count: 9, seed });
    const held = new Set(split.heldOut.map((e) => e.turns[0].content));
    t.true(split.train.every((e) => !held.has(e.turns[0].content)));
    // groups of three are never split, so 9 can be met exactly
    t.is(split.heldOut.length, 9);
  }
  // 10 cannot be met with groups of three: the held-out part stays smaller, never leaks
  t.is(splitHeldOut(loaded.examples, { count: 10, seed: 1 }).heldOut.length, 9);
});

test('impossible split sizes are refused', (t) => {
  const data = examples(10);
  for (const options of [
    { fraction: 0 },
    { fraction: 1 },
    { count: 10 },
    { count: 0 },
    { count: 2.5 },
    {},
    { fraction: 0.1, count: 1 },
  ]) {
    const err = t.throws(
      () => splitHeldOut(data, { ...options, seed: 1 }),
      { instanceOf: DatasetError },
      JSON.stringify(options),
    );
    t.is(err?.code, 'DATASET_OPTIONS');
  }
  t.throws(() => splitHeldOut(examples(1), { fraction: 0.5, seed: 1 }), { instanceOf: DatasetError });
});

test("a participant's held-out slice is min(10%, 32), at least one, never all of its data", (t) => {
  const slice = (total: number) => heldOutCount(total, { fraction: 0.1, max: 32, seed: 'f' });
  t.deepEqual([0, 1, 2, 4, 15, 100, 320, 1000].map(slice), [0, 0, 1, 1, 2, 10, 32, 32]);
  const split = splitHeldOut(examples(1), { fraction: 0.1, max: 32, seed: 'f' });
  t.is(split.heldOut.length, 0);
  t.is(split.train.length, 1);
  t.is(splitHeldOut(examples(1000), { fraction: 0.1, max: 32, seed: 'f' }).heldOut.length, 32);
});
