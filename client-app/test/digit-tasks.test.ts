// The second built-in family of tasks (`digits`) without a trained model: every category's answer
// against a reimplementation written here independently of digit-tasks.ts, seeded generation with
// operands of the right shape, training and held-out wordings disjoint across both families, the
// simulation's built-in datasets by family (held-out operands and wordings never trained on), and
// the `--dataset` option's parsing.

import test from 'ava';
import { DIGIT_CATEGORIES, DIGIT_SPECS, type DigitCategory } from '../src/demo/digit-tasks.ts';
import {
  BUILTIN_CATEGORIES,
  CATEGORY_SPECS,
  TASK_ALPHABET,
  TASK_CATEGORIES,
  TASK_FAMILIES,
  generateTasks,
  taskRecord,
  taskSpec,
} from '../src/demo/tasks.ts';
import { builtinTaskDataset, parseDataset } from '../src/simulate/index.ts';

/** The answers as a person would compute them, by arithmetic on numbers rather than on strings. */
const reference: Record<DigitCategory, (context: string) => string> = {
  increment: (s) => {
    let out = '';
    for (let i = 0; i < s.length; i++)
      out += s.charCodeAt(i) === 57 ? '0' : String.fromCharCode(s.charCodeAt(i) + 1);
    return out;
  },
  sort: (s) => {
    const counts = new Array<number>(10).fill(0);
    for (const d of s) counts[Number(d)]++;
    return counts.map((n, d) => String(d).repeat(n)).join('');
  },
  swap: (pair) => {
    const space = pair.indexOf(' ');
    return pair.slice(space + 1) + ' ' + pair.slice(0, space);
  },
  maxdigit: (s) => String(Math.max(...[...s].map(Number))),
  parity: (n) => (BigInt(n) % 2n === 0n ? 'even' : 'odd'),
  evens: (s) => s.replace(/[13579]/g, ''),
};

/** The shape of each category's operand. */
const shapes: Record<DigitCategory, RegExp> = {
  increment: /^\d{3,5}$/,
  sort: /^\d{3,5}$/,
  swap: /^[1-9]\d{1,2} [1-9]\d{1,2}$/,
  maxdigit: /^\d{3,6}$/,
  parity: /^[1-9]\d{1,4}$/,
  evens: /^\d{4,6}$/,
};

test('each digits category answers exactly, as an independent reimplementation does', (t) => {
  t.is(taskRecord('increment', '4190').response, '5201');
  t.is(taskRecord('sort', '3914').response, '1349');
  t.is(taskRecord('swap', '482 97').response, '97 482');
  t.is(taskRecord('maxdigit', '30712').response, '7');
  t.is(taskRecord('parity', '4817').response, 'odd');
  t.is(taskRecord('parity', '30').response, 'even');
  t.is(taskRecord('evens', '41962').response, '462');
  const records = generateTasks({ categories: DIGIT_CATEGORIES, perCategory: 300, seed: 'reference' });
  t.is(records.length, 300 * DIGIT_CATEGORIES.length);
  for (const r of records) {
    t.is(r.response, reference[r.category](r.context), `${r.category} ${r.context}`);
    t.regex(r.context, shapes[r.category], r.category);
    t.true(r.response.length > 0, `${r.category} ${r.context}: an answer`);
  }
  // The operands are varied enough to be worth learning: not one answer for most of them.
  for (const c of DIGIT_CATEGORIES.filter((c) => c !== 'parity')) {
    const answers = new Set(records.filter((r) => r.category === c).map((r) => r.response));
    t.true(answers.size >= 5, `${c}: ${answers.size} distinct answers`);
  }
  const sorted = records.filter((r) => r.category === 'sort');
  t.true(
    sorted.every((r) => new Set(r.context).size === r.context.length),
    'sort operands have distinct digits',
  );
  const swapped = records.filter((r) => r.category === 'swap');
  t.true(
    swapped.every((r) => r.context.split(' ')[0] !== r.context.split(' ')[1]),
    'two different numbers',
  );
  const parity = records.filter((r) => r.category === 'parity').map((r) => r.response);
  t.deepEqual([...new Set(parity)].sort(), ['even', 'odd']);
});

test('digits generation is seeded, distinct per category, excludes operands, and uses the alphabet', (t) => {
  const options = { categories: DIGIT_CATEGORIES, perCategory: 40, seed: 9 };
  const a = generateTasks(options);
  t.deepEqual(generateTasks(options), a);
  t.notDeepEqual(generateTasks({ ...options, seed: 10 }), a);
  for (const c of DIGIT_CATEGORIES) {
    const operands = a.filter((r) => r.category === c).map((r) => r.context);
    t.is(new Set(operands).size, 40, `${c}: distinct operands`);
  }
  const b = generateTasks({ ...options, seed: 10, exclude: a });
  const taken = new Set(a.map((r) => `${r.category}|${r.context}`));
  t.false(b.some((r) => taken.has(`${r.category}|${r.context}`)));
  for (const r of [...a, ...b]) {
    t.true([...r.instruction, ...r.context, ...r.response].every((ch) => TASK_ALPHABET.includes(ch)));
  }
  // The letters family's data is what it was before a second family existed.
  t.deepEqual(
    generateTasks({ perCategory: 5, seed: 1 }),
    generateTasks({ categories: TASK_FAMILIES.letters.categories, perCategory: 5, seed: 1 }),
  );
});

test('wordings: training and held-out ones are disjoint across every category of both families', (t) => {
  t.deepEqual(BUILTIN_CATEGORIES, [...TASK_CATEGORIES, ...DIGIT_CATEGORIES]);
  t.is(new Set(BUILTIN_CATEGORIES).size, BUILTIN_CATEGORIES.length, 'category names are unique');
  const training = BUILTIN_CATEGORIES.flatMap((c) => taskSpec(c).trainingWordings);
  const heldOut = BUILTIN_CATEGORIES.flatMap((c) => taskSpec(c).heldOutWordings);
  t.is(new Set(training).size, training.length, 'no training wording serves two categories');
  t.is(new Set(heldOut).size, heldOut.length);
  for (const w of heldOut) t.false(training.includes(w), w);
  for (const c of DIGIT_CATEGORIES) {
    const spec = DIGIT_SPECS[c];
    t.is(spec.trainingWordings[0], spec.instruction);
    t.true(spec.trainingWordings.length > 1 && spec.heldOutWordings.length > 1);
  }
  t.is(taskSpec('reverse'), CATEGORY_SPECS.reverse);
});

test('built-in datasets by family: held-out operands and unseen wordings never trained on', (t) => {
  const key = (r: { category: string; context: string }) => `${r.category}|${r.context}`;
  for (const family of ['digits', 'all'] as const) {
    const d = builtinTaskDataset({ seed: 2, family, trainPerCategory: 50, evalPerCategory: 8 });
    const categories = family === 'all' ? BUILTIN_CATEGORIES : DIGIT_CATEGORIES;
    t.is(d.name, `built-in tasks (${family})`);
    t.deepEqual([...new Set(d.train.map((r) => r.category))], [...categories]);
    t.is(d.train.length, 50 * categories.length);
    const [seen, unseen] = d.evaluations;
    const trainOperands = new Set(d.train.map(key));
    const trainWordings = new Set(d.train.map((r) => r.instruction));
    for (const r of [...seen.records, ...unseen.records]) t.false(trainOperands.has(key(r)), key(r));
    t.false(seen.records.some((r) => unseen.records.some((u) => key(u) === key(r))));
    for (const r of seen.records) t.true(trainWordings.has(r.instruction));
    for (const r of unseen.records) t.false(trainWordings.has(r.instruction), r.instruction);
    t.deepEqual(
      builtinTaskDataset({ seed: 2, family, trainPerCategory: 50, evalPerCategory: 8 }),
      d,
      'seeded',
    );
  }
  // The default stays the demo's family, record for record.
  t.deepEqual(
    builtinTaskDataset({ seed: 2, trainPerCategory: 10, evalPerCategory: 2 }),
    builtinTaskDataset({ seed: 2, family: 'letters', trainPerCategory: 10, evalPerCategory: 2 }),
  );
});

test('--dataset names a built-in family, or fails listing the ones there are', (t) => {
  t.is(parseDataset('builtin'), 'letters');
  t.is(parseDataset('builtin:letters'), 'letters');
  t.is(parseDataset('builtin:digits'), 'digits');
  t.is(parseDataset('builtin:all'), 'all');
  for (const bad of ['builtin:nope', 'digits', 'builtin:digits:2', 'builtin:', 'builtin:toString']) {
    t.throws(() => parseDataset(bad), {
      message: `--dataset must be one of builtin, builtin:letters, builtin:digits, builtin:all, got "${bad}"`,
    });
  }
});
