// The demo's built-in tasks and the pieces around them that need no trained model: seeded task
// generation, exact-match scoring, the non-IID split, the demo chat template going through the
// ordinary data path.

import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IGNORE_INDEX, loadTokenizer, writeCharTokenizer } from '@fedit/kernels';
import { prepareDataset } from '../src/core/data/index.ts';
import { DEMO_CHAT_TEMPLATE } from '../src/demo/base-model.ts';
import { taskPrompt } from '../src/demo/evaluate.ts';
import {
  CATEGORY_SPECS,
  TASK_ALPHABET,
  TASK_CATEGORIES,
  demoSplit,
  generateTasks,
  scoreAnswer,
  taskRecord,
  toJsonl,
} from '../src/demo/tasks.ts';

test('each category has a checkable answer', (t) => {
  t.is(taskRecord('reverse', 'lamp').response, 'pmal');
  t.is(taskRecord('uppercase', 'lamp').response, 'LAMP');
  t.is(taskRecord('shift', 'lazy').response, 'mbaz');
  t.is(taskRecord('dashes', 'lamp').response, 'l-a-m-p');
  t.is(taskRecord('double', 'abc').response, 'aabbcc');
  t.is(taskRecord('count', 'lamp').response, '4');
  for (const c of TASK_CATEGORIES) {
    const r = taskRecord(c, 'word');
    t.is(r.category, c);
    t.is(r.instruction, CATEGORY_SPECS[c].instruction);
    t.is(r.context, 'word');
    t.true(
      [...r.instruction, ...r.response].every((ch) => TASK_ALPHABET.includes(ch)),
      c,
    );
  }
  const instructions = new Set(TASK_CATEGORIES.map((c) => CATEGORY_SPECS[c].instruction));
  t.is(instructions.size, TASK_CATEGORIES.length, 'one instruction per category');
});

test('scoring is exact match after trimming', (t) => {
  t.true(scoreAnswer('reverse', 'pmal', 'pmal'));
  t.true(scoreAnswer('reverse', 'pmal', '  pmal\n'));
  t.false(scoreAnswer('reverse', 'pmal', 'pma'));
  t.false(scoreAnswer('reverse', 'pmal', 'pmall'));
  t.false(scoreAnswer('uppercase', 'LAMP', 'lamp'));
});

test('task generation is seeded, distinct per category and can exclude operands', (t) => {
  const a = generateTasks({ perCategory: 30, seed: 5 });
  const b = generateTasks({ perCategory: 30, seed: 5 });
  const c = generateTasks({ perCategory: 30, seed: 6 });
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
  t.is(a.length, 30 * TASK_CATEGORIES.length);
  for (const cat of TASK_CATEGORIES) {
    const operands = a.filter((r) => r.category === cat).map((r) => r.context);
    t.is(new Set(operands).size, 30, `${cat}: distinct operands`);
    const [lo, hi] = CATEGORY_SPECS[cat].length;
    t.true(operands.every((w) => w.length >= lo && w.length <= hi && /^[a-z]+$/.test(w)));
  }
  const d = generateTasks({ perCategory: 30, seed: 6, exclude: a });
  for (const r of d) t.false(a.some((x) => x.category === r.category && x.context === r.context));
  t.throws(() => generateTasks({ categories: ['nope' as 'count'], perCategory: 1, seed: 1 }), {
    message: /unknown task category 'nope'/,
  });
});

test('the demo split is non-IID and keeps evaluation operands out of training', (t) => {
  const split = demoSplit({ trainPerCategory: 40, evalPerCategory: 10 });
  t.is(split.participants.length, 3);
  t.deepEqual(
    split.participants.map((p) => p.categories),
    [
      ['reverse', 'uppercase'],
      ['shift', 'dashes'],
      ['double', 'count'],
    ],
  );
  t.is(split.evaluation.length, 10 * TASK_CATEGORIES.length);
  const seen = new Set(split.evaluation.map((r) => `${r.category}:${r.context}`));
  for (const p of split.participants) {
    t.is(p.train.length, 80);
    t.deepEqual(
      [...new Set(p.train.map((r) => r.category))].sort(),
      [...p.categories].sort(),
      `${p.name} sees only its own`,
    );
    for (const r of p.train) {
      const key = `${r.category}:${r.context}`;
      t.false(seen.has(key), `${key} appears twice`);
      seen.add(key);
    }
  }
  t.deepEqual(demoSplit({ trainPerCategory: 40, evalPerCategory: 10 }), split, 'deterministic');
  const four = demoSplit({ participants: 4, categoriesPerParticipant: 3, trainPerCategory: 5 });
  t.deepEqual(
    four.participants.map((p) => p.categories[0]),
    ['reverse', 'uppercase', 'dashes', 'double'],
  );
  t.deepEqual(four.participants[3].categories, ['double', 'count', 'reverse']);
});

test('demo records go through the ordinary data path with the demo chat template', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-demo-tasks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeCharTokenizer(dir, { alphabet: TASK_ALPHABET, chatTemplate: DEMO_CHAT_TEMPLATE });
  const tokenizer = await loadTokenizer(dir);
  const records = [taskRecord('reverse', 'lamp'), taskRecord('count', 'abc')];
  const file = join(dir, 'data.jsonl');
  await writeFile(file, toJsonl(records));
  const prepared = await prepareDataset([file], {
    tokens: { tokenizer, template: 'chat', cutoffLen: 64 },
  });
  t.is(prepared.report.files[0].format, 'dolly');
  t.deepEqual(prepared.report.categories, { reverse: 1, count: 1 });
  const [row] = prepared.rows!.train;
  t.is(row.text, '<|im_start|>Reverse the word.\n\nlamp\npmal<|im_end|>');
  const trained = row.inputIds.filter((_, i) => row.labels[i] !== IGNORE_INDEX);
  t.is(tokenizer.decode(trained), 'pmal<|im_end|>', 'the loss sees the answer and the end of turn');
  t.is(row.inputIds.length, 1 + 'Reverse the word.\n\nlamp\n'.length + 4 + 1, 'one token per character');
  // What evaluation sends the model is the training prompt, up to the answer.
  t.is(taskPrompt(tokenizer, records[0]), '<|im_start|>Reverse the word.\n\nlamp\n');
  t.true(tokenizer.stopTokenIds.includes(tokenizer.tokenToId('<|im_end|>')!));
});
