// The simulation's data: the split (shards and Dirichlet) deals every record out at most once,
// covers the data, follows its seed; the built-in dataset's held-out wordings never appear in
// training data; a person's file is read with file:line errors.

import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CATEGORY_SPECS, TASK_CATEGORIES, type InstructionRecord } from '../src/demo/tasks.ts';
import {
  builtinTaskDataset,
  dirichlet,
  fileDataset,
  readInstructionFile,
  scoredSets,
  splitByCategory,
  type ParticipantShard,
} from '../src/simulate/index.ts';
import { seededRandom } from '../src/core/data/random.ts';

const key = (r: InstructionRecord) => `${r.category}|${r.instruction}|${r.context}`;
const dataset = builtinTaskDataset({ seed: 3, trainPerCategory: 60, evalPerCategory: 6 });

/** Every record of `records` in exactly one shard, and nothing else. */
function assertPartition(t: ExecutionContext, records: InstructionRecord[], shards: ParticipantShard[]) {
  const dealt = shards.flatMap((s) => s.train.map(key)).sort();
  t.deepEqual(dealt, records.map(key).sort());
  for (const s of shards) {
    t.deepEqual(
      [...new Set(s.train.map((r) => r.category))].sort(),
      [...s.categories].sort(),
      `${s.name} holds records of exactly its categories`,
    );
  }
}

test('shards: participant i holds k consecutive categories; shared categories are dealt out disjointly', (t) => {
  const three = splitByCategory(dataset.train, {
    participants: 3,
    split: { kind: 'shards', categoriesPerParticipant: 2 },
    seed: 1,
  });
  t.deepEqual(
    three.map((s) => s.categories),
    [
      ['reverse', 'uppercase'],
      ['shift', 'dashes'],
      ['double', 'count'],
    ],
  );
  assertPartition(t, dataset.train, three);
  t.deepEqual(
    three.map((s) => s.train.length),
    [120, 120, 120],
  );

  // 4 participants x 3 categories over 6: every category held twice, split in halves.
  const four = splitByCategory(dataset.train, {
    participants: 4,
    split: { kind: 'shards', categoriesPerParticipant: 3 },
    seed: 1,
  });
  assertPartition(t, dataset.train, four);
  t.deepEqual(
    four.map((s) => s.train.length),
    [90, 90, 90, 90],
  );
  t.throws(
    () =>
      splitByCategory(dataset.train, {
        participants: 3,
        split: { kind: 'shards', categoriesPerParticipant: 7 },
        seed: 1,
      }),
    { message: /shards:7: each participant must hold 1 to 6 categories/ },
  );
});

test("under attack every adapter is scored on the honest participants' categories only", (t) => {
  // shards:2 over three participants: participant-1 holds reverse+uppercase, nobody else does.
  const shards = splitByCategory(dataset.train, {
    participants: 3,
    split: { kind: 'shards', categoriesPerParticipant: 2 },
    seed: 3,
  });
  t.deepEqual(shards[0].categories, ['reverse', 'uppercase']);
  t.is(scoredSets(dataset, shards, undefined), dataset.evaluations, 'no attacker: the whole sets');
  const scored = scoredSets(dataset, shards, 0);
  t.deepEqual(
    scored.map((s) => s.name),
    dataset.evaluations.map((s) => s.name),
  );
  scored.forEach((set, i) => {
    const honest = dataset.evaluations[i].records.filter(
      (r) => !['reverse', 'uppercase'].includes(r.category),
    );
    t.deepEqual(set.records, honest, set.name);
    t.is(set.records.length, 4 * 6);
  });
  // shards:4: the two honest participants hold every category between them.
  const overlapping = splitByCategory(dataset.train, {
    participants: 3,
    split: { kind: 'shards', categoriesPerParticipant: 4 },
    seed: 3,
  });
  t.deepEqual(scoredSets(dataset, overlapping, 0), dataset.evaluations);
  const onlyTheirs = {
    ...dataset,
    evaluations: [
      { name: 'theirs', records: dataset.evaluations[0].records.filter((r) => r.category === 'reverse') },
    ],
  };
  t.throws(() => scoredSets(onlyTheirs, shards, 0), {
    message:
      /evaluation set 'theirs' holds no record of the categories the honest participants hold \(shift, dashes, double, count\)/,
  });
});

test('dirichlet: a seeded partition of the data, skewed for small alpha, near even for large', (t) => {
  const split = (alpha: number, seed: number) =>
    splitByCategory(dataset.train, { participants: 3, split: { kind: 'dirichlet', alpha }, seed });
  const a = split(0.3, 5);
  assertPartition(t, dataset.train, a);
  t.deepEqual(split(0.3, 5), a, 'same seed, same split');
  t.notDeepEqual(
    split(0.3, 6).map((s) => s.train.map(key)),
    a.map((s) => s.train.map(key)),
  );
  for (const s of a) t.true(s.train.length >= 8, 'nobody trains on (almost) nothing');

  // The largest share of a category held by one participant: high for small alpha, near 1/3 for large.
  const topShare = (shards: ParticipantShard[]) => {
    let total = 0;
    for (const c of TASK_CATEGORIES) {
      const counts = shards.map((s) => s.train.filter((r) => r.category === c).length);
      total += Math.max(...counts) / counts.reduce((x, y) => x + y, 0);
    }
    return total / TASK_CATEGORIES.length;
  };
  t.true(topShare(split(0.1, 2)) > 0.75, `alpha 0.1 concentrates categories (${topShare(split(0.1, 2))})`);
  t.true(topShare(split(1000, 2)) < 0.4, `alpha 1000 is close to IID (${topShare(split(1000, 2))})`);
  t.throws(() => split(0, 1), { message: /alpha must be > 0/ });
});

test('dirichlet draws sum to one and have the mean 1/n', (t) => {
  const random = seededRandom('dirichlet-test');
  const sums = new Array(4).fill(0);
  for (let i = 0; i < 2000; i++) {
    const p = dirichlet(4, 0.5, random);
    t.true(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    p.forEach((x, j) => (sums[j] += x));
  }
  for (const s of sums) t.true(Math.abs(s / 2000 - 0.25) < 0.03, `mean ${s / 2000}`);
});

test('held-out wordings never appear in training data; held-out operands are not trained on', (t) => {
  const trainWordings = new Set(dataset.train.map((r) => r.instruction));
  const [seen, unseen] = dataset.evaluations;
  t.is(seen.name, 'seen wordings');
  t.is(unseen.name, 'unseen wordings');
  for (const r of unseen.records) t.false(trainWordings.has(r.instruction), r.instruction);
  for (const r of seen.records) t.true(trainWordings.has(r.instruction), r.instruction);
  const trainOperands = new Set(dataset.train.map((r) => `${r.category}|${r.context}`));
  for (const r of [...seen.records, ...unseen.records])
    t.false(trainOperands.has(`${r.category}|${r.context}`));
  for (const c of TASK_CATEGORIES) {
    const spec = CATEGORY_SPECS[c];
    t.is(spec.trainingWordings[0], spec.instruction, 'the demo wording is a training wording');
    t.false(spec.heldOutWordings.some((w) => spec.trainingWordings.includes(w)));
    t.true(spec.trainingWordings.length > 1 && spec.heldOutWordings.length > 1);
  }
  t.deepEqual(builtinTaskDataset({ seed: 3, trainPerCategory: 60, evalPerCategory: 6 }), dataset, 'seeded');
});

test("a person's file: records with a category, held out per category, errors name file:line and field", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-simulate-data-'));
  const file = join(dir, 'data.jsonl');
  const lines = Array.from({ length: 20 }, (_, i) =>
    JSON.stringify({
      instruction: 'Add one.',
      input: String(i),
      output: String(i + 1),
      category: i % 2 ? 'odd' : 'even',
    }),
  );
  writeFileSync(file, lines.join('\n') + '\n');
  const d = await fileDataset({ trainFile: file, seed: 1, heldOutFraction: 0.2 });
  t.is(d.train.length, 16);
  t.is(d.evaluations[0].records.length, 4);
  t.deepEqual(d.evaluations[0].records.map((r) => r.category).sort(), ['even', 'even', 'odd', 'odd']);
  t.deepEqual(d.train[0], {
    instruction: 'Add one.',
    context: d.train[0].context,
    response: d.train[0].response,
    category: d.train[0].category,
  });

  writeFileSync(file, lines[0] + '\n' + JSON.stringify({ instruction: 'x', response: 'y' }) + '\n');
  await t.throwsAsync(readInstructionFile(file), {
    message: `${file}:2: field 'category' must be a non-empty string`,
  });
  writeFileSync(file, lines[0] + '\n{"instruction": \n');
  await t.throwsAsync(readInstructionFile(file), { message: new RegExp(`^${file}:2: `) });
});
