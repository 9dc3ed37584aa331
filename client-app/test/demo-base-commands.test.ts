// The built-in base models. The demo's (letters family) is the one it was before the digits family
// existed: same cache key, so the same bytes. The model of both families (what a simulation of the
// digits family uses), loaded through the ordinary checkpoint and tokenizer path, does every
// operation of both families when asked by a terse command (what its pretraining taught), and does
// not follow the English instructions of the digits family (what instruction tuning has to teach).
// Greedy decoding, operands the corpus was not seeded with.

import test from 'ava';
import { loadCheckpoint, loadTokenizer } from '@fedit/kernels';
import { seededRandom } from '../src/core/data/random.ts';
import {
  SKILL_COMMANDS,
  commandPrompt,
  defaultDemoCacheDir,
  ensureDemoBaseModel,
} from '../src/demo/base-model.ts';
import { DIGIT_CATEGORIES } from '../src/demo/digit-tasks.ts';
import { greedyAnswers, taskAccuracy } from '../src/demo/evaluate.ts';
import { BUILTIN_CATEGORIES, generateTasks, randomOperand, taskSpec } from '../src/demo/tasks.ts';

const PER_CATEGORY = 8;
const BOTH = { recipe: { families: ['letters', 'digits'] as const } };

test("the demo's model keeps its key; the model of both families has its own", async (t) => {
  const demo = await ensureDemoBaseModel(defaultDemoCacheDir());
  t.regex(demo, /demo-base-v1-598e3b0fb879$/, 'the key the demo model had before the digits family');
  const both = await ensureDemoBaseModel(defaultDemoCacheDir(), BOTH);
  t.not(both, demo);
  t.regex(both, /demo-base-v1-[0-9a-f]{12}$/);
});

test('the base model of both families does the commands of both', async (t) => {
  const dir = await ensureDemoBaseModel(defaultDemoCacheDir(), BOTH);
  const model = await loadCheckpoint(dir);
  const tokenizer = await loadTokenizer(dir);
  const cases = BUILTIN_CATEGORIES.flatMap((category) => {
    const random = seededRandom(`base-commands-test:${category}`);
    return Array.from({ length: PER_CATEGORY }, (_, i) => {
      const operand = randomOperand(category, random);
      const command = i % SKILL_COMMANDS[category].length;
      return { category, operand, prompt: commandPrompt(category, operand, command) };
    });
  });
  const prompts = cases.map((c) =>
    tokenizer.applyChatTemplate([{ role: 'user', content: c.prompt }], { addGenerationPrompt: true }),
  );
  const answers = await greedyAnswers(model, tokenizer, prompts, { maxNewTokens: 16 });
  for (const category of BUILTIN_CATEGORIES) {
    const mine = cases.map((c, i) => ({ ...c, answer: answers[i] })).filter((c) => c.category === category);
    const wrong = mine.filter((c) => c.answer.trim() !== taskSpec(category).solve(c.operand));
    t.true(
      wrong.length <= 1,
      `${category}: ${PER_CATEGORY - wrong.length}/${PER_CATEGORY} right; wrong: ${wrong.map((c) => `${c.operand} -> ${c.answer}`).join(', ')}`,
    );
  }
});

test("the base model does not follow the digits family's English instructions", async (t) => {
  const dir = await ensureDemoBaseModel(defaultDemoCacheDir(), BOTH);
  const accuracy = await taskAccuracy({
    modelDir: dir,
    examples: generateTasks({
      categories: DIGIT_CATEGORIES,
      perCategory: 6,
      seed: 'base-english-test',
      wordings: 'training',
    }),
  });
  t.log(`base model on the digits family's instructions: ${(100 * accuracy.overall.accuracy).toFixed(0)}%`);
  t.true(accuracy.overall.accuracy <= 0.25, `${accuracy.overall.accuracy}`);
});
