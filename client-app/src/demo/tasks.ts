// The demo's instruction data: small procedurally generated tasks whose answers can be checked
// exactly, in a few categories, as Dolly-style records ({instruction, context, response,
// category}) that the ordinary data path reads. Generation is seeded, so every run of the demo (and
// every participant) sees the same records.
//
// Each category is one string operation on a short random word (random letters, not a dictionary,
// so there are thousands of distinct operands and held-out operands are never trained on). The
// built-in base model (base-model.ts) can do each operation when asked by a terse command, but has
// never seen the English instructions below; instruction tuning teaches it to follow them.

import { seededRandom, shuffleInPlace } from '../core/data/random.ts';

export const TASK_CATEGORIES = ['reverse', 'uppercase', 'shift', 'dashes', 'double', 'count'] as const;
export type TaskCategory = (typeof TASK_CATEGORIES)[number];

export interface TaskRecord {
  instruction: string;
  context: string;
  response: string;
  category: TaskCategory;
}

interface CategorySpec {
  /** The English instruction the demo's data uses. */
  instruction: string;
  /** Letters of the operand: [min, max]. */
  length: [number, number];
  /** Operand letters are all different (so a sorted word is unambiguous). */
  distinct?: boolean;
  solve(word: string): string;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

export const CATEGORY_SPECS: Readonly<Record<TaskCategory, CategorySpec>> = {
  reverse: {
    instruction: 'Reverse the word.',
    length: [3, 5],
    solve: (w) => [...w].reverse().join(''),
  },
  uppercase: {
    instruction: 'Write it in capitals.',
    length: [3, 5],
    solve: (w) => w.toUpperCase(),
  },
  shift: {
    instruction: 'Advance every letter by one.',
    length: [3, 5],
    solve: (w) => [...w].map((c) => LETTERS[(LETTERS.indexOf(c) + 1) % 26]).join(''),
  },
  dashes: {
    instruction: 'Put dashes between the letters.',
    length: [3, 5],
    solve: (w) => [...w].join('-'),
  },
  double: {
    instruction: 'Double each letter.',
    length: [2, 4],
    solve: (w) => [...w].map((c) => c + c).join(''),
  },
  count: {
    instruction: 'How long is this word?',
    length: [2, 9],
    solve: (w) => String(w.length),
  },
};

/** Every character the demo's texts use (the base model's alphabet draws on it). */
export const TASK_ALPHABET = LETTERS + LETTERS.toUpperCase() + '0123456789 .,?!:;()=+-\'"\n';

export function isTaskCategory(value: string): value is TaskCategory {
  return (TASK_CATEGORIES as readonly string[]).includes(value);
}

/** A random operand for a category. */
export function randomOperand(category: TaskCategory, random: () => number): string {
  const spec = CATEGORY_SPECS[category];
  const [lo, hi] = spec.length;
  const n = lo + Math.floor(random() * (hi - lo + 1));
  let word = '';
  while (word.length < n) {
    const c = LETTERS[Math.floor(random() * 26)];
    if (spec.distinct && word.includes(c)) continue;
    word += c;
  }
  return word;
}

/** The record of one task. */
export function taskRecord(category: TaskCategory, operand: string): TaskRecord {
  const spec = CATEGORY_SPECS[category];
  return { instruction: spec.instruction, context: operand, response: spec.solve(operand), category };
}

export interface GenerateTasksOptions {
  categories?: readonly TaskCategory[];
  perCategory: number;
  seed: number | string;
  /** Operands (per category) that must not be drawn: e.g. the held-out evaluation set's. */
  exclude?: ReadonlyMap<TaskCategory, ReadonlySet<string>> | readonly TaskRecord[];
}

function excludedSets(
  exclude: GenerateTasksOptions['exclude'],
): ReadonlyMap<TaskCategory, ReadonlySet<string>> {
  if (!exclude) return new Map();
  if (exclude instanceof Map) return exclude;
  const sets = new Map<TaskCategory, Set<string>>();
  for (const r of exclude as readonly TaskRecord[]) {
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
export function generateTasks(o: GenerateTasksOptions): TaskRecord[] {
  const categories = o.categories ?? TASK_CATEGORIES;
  const excluded = excludedSets(o.exclude);
  const out: TaskRecord[] = [];
  for (const category of categories) {
    if (!isTaskCategory(category)) throw new Error(`unknown task category '${String(category)}'`);
    const random = seededRandom(`${String(o.seed)}:${category}`);
    const seen = new Set<string>(excluded.get(category));
    let drawn = 0;
    let attempts = 0;
    while (drawn < o.perCategory) {
      if (++attempts > 100 * o.perCategory + 1000)
        throw new Error(`cannot draw ${o.perCategory} distinct '${category}' tasks`);
      const operand = randomOperand(category, random);
      if (seen.has(operand)) continue;
      seen.add(operand);
      out.push(taskRecord(category, operand));
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
  const used = excludedSets(evaluation) as Map<TaskCategory, Set<string>>;
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
export function toJsonl(records: readonly TaskRecord[]): string {
  return records.map((r) => JSON.stringify(r)).join('\n') + '\n';
}
