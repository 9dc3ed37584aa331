// The demo's instruction data: small procedurally generated tasks whose answers can be checked
// exactly, in a few categories, as Dolly-style records ({instruction, context, response,
// category}) that the ordinary data path reads. Generation is seeded, so every run of the demo (and
// every participant) sees the same records.
//
// Two built-in families of categories (TASK_FAMILIES). `letters`, the demo's: each category is one
// string operation on a short random word (random letters, not a dictionary, so there are
// thousands of distinct operands and held-out operands are never trained on). `digits`
// (digit-tasks.ts): operations on digit strings and pairs of numbers. The built-in base model
// (base-model.ts) can do each operation when asked by a terse command, but has never seen the
// English instructions; instruction tuning teaches it to follow them.
//
// Each category has one instruction the demo uses, a few more English wordings that training data
// may use (the demo's among them), and a disjoint set of held-out wordings that no training data
// ever uses: a simulation measures on them whether an adapter learnt the skill or the sentence.

import { seededRandom, shuffleInPlace } from '../core/data/random.ts';
import { DIGIT_CATEGORIES, DIGIT_SPECS, type DigitCategory } from './digit-tasks.ts';
import { LETTERS, randomString, type TaskSpec } from './task-spec.ts';

export const TASK_CATEGORIES = ['reverse', 'uppercase', 'shift', 'dashes', 'double', 'count'] as const;
export type TaskCategory = (typeof TASK_CATEGORIES)[number];

/** One Dolly-style instruction record with a category: what a simulation splits and evaluates. */
export interface InstructionRecord {
  instruction: string;
  context: string;
  response: string;
  category: string;
}

/** A category of either built-in family. */
export type BuiltinCategory = TaskCategory | DigitCategory;

export interface TaskRecord<C extends BuiltinCategory = TaskCategory> extends InstructionRecord {
  category: C;
}

/** A task on one word of random letters. */
interface WordTaskSpec extends TaskSpec {
  /** Letters of the operand: [min, max]. */
  length: [number, number];
  /** Operand letters are all different (so a sorted word is unambiguous). */
  distinct?: boolean;
}

/** A word task's spec, its operand drawn from `length` (and `distinct`). */
function wordTask(spec: Omit<WordTaskSpec, 'operand'>): WordTaskSpec {
  return { ...spec, operand: (random) => randomString(LETTERS, spec.length, random, spec.distinct) };
}

export const CATEGORY_SPECS: Readonly<Record<TaskCategory, WordTaskSpec>> = {
  reverse: wordTask({
    instruction: 'Reverse the word.',
    trainingWordings: [
      'Reverse the word.',
      'Write the word backwards.',
      'Spell this word from the last letter to the first.',
    ],
    heldOutWordings: ['Give me the letters in reverse order.', 'What is this word read right to left?'],
    length: [3, 5],
    solve: (w) => [...w].reverse().join(''),
  }),
  uppercase: wordTask({
    instruction: 'Write it in capitals.',
    trainingWordings: [
      'Write it in capitals.',
      'Convert the word to upper case.',
      'Make every letter a capital letter.',
    ],
    heldOutWordings: ['Shout this word in uppercase letters.', 'Rewrite it using only capital letters.'],
    length: [3, 5],
    solve: (w) => w.toUpperCase(),
  }),
  shift: wordTask({
    instruction: 'Advance every letter by one.',
    trainingWordings: [
      'Advance every letter by one.',
      'Replace each letter with the next one in the alphabet.',
      'Move each letter one step forward in the alphabet.',
    ],
    heldOutWordings: [
      'Change every letter to the letter that follows it.',
      'Shift the letters forward by one place.',
    ],
    length: [3, 5],
    solve: (w) => [...w].map((c) => LETTERS[(LETTERS.indexOf(c) + 1) % 26]).join(''),
  }),
  dashes: wordTask({
    instruction: 'Put dashes between the letters.',
    trainingWordings: [
      'Put dashes between the letters.',
      'Separate the letters with hyphens.',
      'Insert a dash between each pair of letters.',
    ],
    heldOutWordings: ['Join the letters with a - sign.', 'Write the letters with a hyphen in between.'],
    length: [3, 5],
    solve: (w) => [...w].join('-'),
  }),
  double: wordTask({
    instruction: 'Double each letter.',
    trainingWordings: ['Double each letter.', 'Write every letter twice.', 'Repeat each letter two times.'],
    heldOutWordings: ['Say each letter two times in a row.', 'Duplicate every letter of the word.'],
    length: [2, 4],
    solve: (w) => [...w].map((c) => c + c).join(''),
  }),
  count: wordTask({
    instruction: 'How long is this word?',
    trainingWordings: [
      'How long is this word?',
      'Count the letters in the word.',
      'How many letters does this word have?',
    ],
    heldOutWordings: ['Give the number of letters.', 'What is the length of this word?'],
    length: [2, 9],
    solve: (w) => String(w.length),
  }),
};

/** Every character the demo's texts use (the base model's alphabet draws on it). */
export const TASK_ALPHABET = LETTERS + LETTERS.toUpperCase() + '0123456789 .,?!:;()=+-\'"\n';

export function isTaskCategory(value: string): value is TaskCategory {
  return (TASK_CATEGORIES as readonly string[]).includes(value);
}

/** A built-in family of task categories, chosen by name (`--dataset builtin:<name>`). */
export interface TaskFamily<C extends BuiltinCategory = BuiltinCategory> {
  name: string;
  /** What the family's operations have in common, for people. */
  description: string;
  categories: readonly C[];
}

export const TASK_FAMILIES = {
  letters: {
    name: 'letters',
    description: "one string operation on a random word (the demo's family)",
    categories: TASK_CATEGORIES,
  },
  digits: {
    name: 'digits',
    description: 'operations on digit strings and pairs of numbers',
    categories: DIGIT_CATEGORIES,
  },
} as const satisfies Record<string, TaskFamily>;
export type TaskFamilyName = keyof typeof TASK_FAMILIES;

/** Every built-in category, family by family (names are unique across families). */
export const BUILTIN_CATEGORIES: readonly BuiltinCategory[] = [...TASK_CATEGORIES, ...DIGIT_CATEGORIES];

export function isBuiltinCategory(value: string): value is BuiltinCategory {
  return (BUILTIN_CATEGORIES as readonly string[]).includes(value);
}

/** The spec of a category of either family. */
export function taskSpec(category: BuiltinCategory): TaskSpec {
  return isTaskCategory(category) ? CATEGORY_SPECS[category] : DIGIT_SPECS[category];
}

/** A random operand for a category. */
export function randomOperand(category: BuiltinCategory, random: () => number): string {
  return taskSpec(category).operand(random);
}

/** The record of one task, in the demo's wording unless another is given. */
export function taskRecord<C extends BuiltinCategory>(
  category: C,
  operand: string,
  instruction?: string,
): TaskRecord<C> {
  const spec = taskSpec(category);
  return {
    instruction: instruction ?? spec.instruction,
    context: operand,
    response: spec.solve(operand),
    category,
  };
}

/**
 * Which instructions generated tasks use: the demo's one wording, one drawn from the training
 * wordings, or one drawn from the held-out wordings (which no training data uses).
 */
export type TaskWordings = 'demo' | 'training' | 'held-out';

function wordingsOf(category: BuiltinCategory, wordings: TaskWordings): readonly string[] {
  const spec = taskSpec(category);
  if (wordings === 'training') return spec.trainingWordings;
  if (wordings === 'held-out') return spec.heldOutWordings;
  return [spec.instruction];
}

export interface GenerateTasksOptions<C extends BuiltinCategory = TaskCategory> {
  /** Default: the demo's family (TASK_CATEGORIES). */
  categories?: readonly C[];
  perCategory: number;
  seed: number | string;
  /** Operands (per category) that must not be drawn: e.g. the held-out evaluation set's. */
  exclude?: ReadonlyMap<string, ReadonlySet<string>> | readonly InstructionRecord[];
  /** Default 'demo'. The wording is drawn from its own seeded stream: operands do not depend on it. */
  wordings?: TaskWordings;
}

function excludedSets(exclude: GenerateTasksOptions['exclude']): ReadonlyMap<string, ReadonlySet<string>> {
  if (!exclude) return new Map();
  if (exclude instanceof Map) return exclude;
  const sets = new Map<string, Set<string>>();
  for (const r of exclude as readonly InstructionRecord[]) {
    const set = sets.get(r.category) ?? new Set<string>();
    set.add(r.context);
    sets.set(r.category, set);
  }
  return sets;
}

/**
 * `perCategory` tasks of each category, with distinct operands within a category, none of them in
 * `exclude`. Records are grouped by category, in `categories` order.
 */
export function generateTasks<C extends BuiltinCategory = TaskCategory>(
  o: GenerateTasksOptions<C>,
): TaskRecord<C>[] {
  const categories = o.categories ?? (TASK_CATEGORIES as readonly BuiltinCategory[] as readonly C[]);
  const excluded = excludedSets(o.exclude);
  const out: TaskRecord<C>[] = [];
  for (const category of categories) {
    if (!isBuiltinCategory(category)) throw new Error(`unknown task category '${String(category)}'`);
    const random = seededRandom(`${String(o.seed)}:${category}`);
    const wordings = wordingsOf(category, o.wordings ?? 'demo');
    const pickWording = seededRandom(`${String(o.seed)}:${category}:wording`);
    const seen = new Set<string>(excluded.get(category));
    let drawn = 0;
    let attempts = 0;
    while (drawn < o.perCategory) {
      if (++attempts > 100 * o.perCategory + 1000)
        throw new Error(`cannot draw ${o.perCategory} distinct '${category}' tasks`);
      const operand = randomOperand(category, random);
      if (seen.has(operand)) continue;
      seen.add(operand);
      const instruction = wordings[Math.floor(pickWording() * wordings.length)];
      out.push(taskRecord(category, operand, instruction));
      drawn++;
    }
  }
  return out;
}

/** Exact match after trimming whitespace on both sides. */
export function scoreAnswer(_category: TaskCategory | string, expected: string, generated: string): boolean {
  return expected.trim() === generated.trim();
}

export interface DemoParticipantShard {
  name: string;
  categories: TaskCategory[];
  train: TaskRecord[];
}

export interface DemoSplitOptions {
  /** Participants (default 3). */
  participants?: number;
  /** Categories each participant holds (default 2). */
  categoriesPerParticipant?: number;
  /** Training tasks per category in a participant's shard (default 200). */
  trainPerCategory?: number;
  /** Held-out evaluation tasks per category (default 24). */
  evalPerCategory?: number;
  categories?: readonly TaskCategory[];
  seed?: number | string;
}

export interface DemoSplit {
  participants: DemoParticipantShard[];
  /** Held-out tasks of every category; no participant trains on their operands. */
  evaluation: TaskRecord[];
}

/**
 * The non-IID split of the demo, like Shepherd's category-sharded Dolly: participant i holds k
 * consecutive categories (cyclically) starting at category floor(i * C / n), so the participants'
 * windows are spread evenly over the C categories. With the default 3 participants and 2 categories
 * each, every category belongs to exactly one participant and nobody sees the others'. Operands
 * are distinct across participants and the evaluation set.
 */
export function demoSplit(o: DemoSplitOptions = {}): DemoSplit {
  const categories = [...(o.categories ?? TASK_CATEGORIES)];
  const n = o.participants ?? 3;
  const k = o.categoriesPerParticipant ?? 2;
  const seed = o.seed ?? 'fedit-demo';
  if (!(n >= 1 && k >= 1 && k <= categories.length))
    throw new Error(`demoSplit: ${n} participants with ${k} of ${categories.length} categories each`);
  const evaluation = generateTasks({
    categories,
    perCategory: o.evalPerCategory ?? 24,
    seed: `${seed}:eval`,
  });
  const used = excludedSets(evaluation) as Map<string, Set<string>>;
  const participants: DemoParticipantShard[] = [];
  for (let i = 0; i < n; i++) {
    const start = Math.floor((i * categories.length) / n);
    const mine = Array.from({ length: k }, (_, j) => categories[(start + j) % categories.length]);
    const train = generateTasks({
      categories: mine,
      perCategory: o.trainPerCategory ?? 200,
      seed: `${seed}:participant-${i}`,
      exclude: used,
    });
    for (const r of train) {
      const set = used.get(r.category) ?? new Set<string>();
      set.add(r.context);
      used.set(r.category, set);
    }
    shuffleInPlace(train, seededRandom(`${seed}:shuffle-${i}`));
    participants.push({ name: `participant-${i + 1}`, categories: mine, train });
  }
  return { participants, evaluation };
}

/** Records as JSON Lines (the `dolly` format). */
export function toJsonl(records: readonly InstructionRecord[]): string {
  return records.map((r) => JSON.stringify(r)).join('\n') + '\n';
}
