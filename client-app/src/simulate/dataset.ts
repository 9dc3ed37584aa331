// What a simulation trains and measures on: training records with a category, and one or more
// named held-out evaluation sets whose answers are checked by exact match.
//
// - The built-in tasks (../demo/tasks.ts) of one family (`letters`, the demo's, or `digits`) or of
//   both (`all`): training records use the categories' training wordings; two evaluation sets use
//   held-out operands, one with those same wordings ('seen wordings') and one with wordings that
//   appear in no training record ('unseen wordings'), so a table shows whether an adapter learnt
//   the skill or the sentence.
// - A person's own file (Dolly {instruction, context, response, category} or Alpaca
//   {instruction, input, output, category}, JSON Lines or a JSON array): read through the data
//   path (file:line in every complaint); evaluated on their own evaluation file, or on a seeded
//   share of each category held out of training.

import { DatasetError } from '../core/data/errors.ts';
import { readRecords } from '../core/data/read.ts';
import { seededRandom, shuffleInPlace } from '../core/data/random.ts';
import {
  BUILTIN_CATEGORIES,
  TASK_FAMILIES,
  generateTasks,
  type BuiltinCategory,
  type InstructionRecord,
  type TaskFamilyName,
} from '../demo/tasks.ts';

export interface EvaluationSet {
  name: string;
  records: InstructionRecord[];
}

export interface SimulationDataset {
  /** How the tables name it. */
  name: string;
  train: InstructionRecord[];
  evaluations: EvaluationSet[];
}

export interface BuiltinDatasetOptions {
  seed: number | string;
  /** Training records per category (default 200: the demo's shard size). */
  trainPerCategory?: number;
  /** Held-out records per category in each evaluation set (default 24: the demo's). */
  evalPerCategory?: number;
  /** Which family's categories (default 'letters', the demo's); `categories` overrides it. */
  family?: BuiltinFamilyChoice;
  categories?: readonly BuiltinCategory[];
}

/** A built-in family by name, or `all`: both, the letters family's categories first. */
export type BuiltinFamilyChoice = TaskFamilyName | 'all';

export function builtinFamilyCategories(family: BuiltinFamilyChoice): readonly BuiltinCategory[] {
  return family === 'all' ? BUILTIN_CATEGORIES : TASK_FAMILIES[family].categories;
}

/**
 * The families the built-in base model must know the commands of for a dataset: the demo's model
 * (letters) for the letters family, the model that knows both for the digits family or both.
 */
export function baseModelFamilies(family: BuiltinFamilyChoice): TaskFamilyName[] {
  return family === 'letters' ? ['letters'] : ['letters', 'digits'];
}

/** Built-in tasks, several training wordings, held-out operands and held-out wordings. */
export function builtinTaskDataset(o: BuiltinDatasetOptions): SimulationDataset {
  const perCategory = o.evalPerCategory ?? 24;
  const family = o.family ?? 'letters';
  const categories = o.categories ?? builtinFamilyCategories(family);
  const seen = generateTasks({
    categories,
    perCategory,
    seed: `${o.seed}:eval-seen`,
    wordings: 'training',
  });
  const unseen = generateTasks({
    categories,
    perCategory,
    seed: `${o.seed}:eval-unseen`,
    wordings: 'held-out',
    exclude: seen,
  });
  const train = generateTasks({
    categories,
    perCategory: o.trainPerCategory ?? 200,
    seed: `${o.seed}:train`,
    wordings: 'training',
    exclude: [...seen, ...unseen],
  });
  return {
    name: family === 'letters' ? 'built-in tasks' : `built-in tasks (${family})`,
    train,
    evaluations: [
      { name: 'seen wordings', records: seen },
      { name: 'unseen wordings', records: unseen },
    ],
  };
}

export interface FileDatasetOptions {
  trainFile: string;
  /** Held-out records; default: `heldOutFraction` of each category of `trainFile`, seeded. */
  evalFile?: string;
  /** Default 0.1, at least one record per category. */
  heldOutFraction?: number;
  seed: number | string;
}

/** A person's own data file (and evaluation file) as a simulation dataset. */
export async function fileDataset(o: FileDatasetOptions): Promise<SimulationDataset> {
  const records = await readInstructionFile(o.trainFile);
  if (o.evalFile !== undefined) {
    return {
      name: o.trainFile,
      train: records,
      evaluations: [{ name: 'held-out', records: await readInstructionFile(o.evalFile) }],
    };
  }
  const fraction = o.heldOutFraction ?? 0.1;
  if (!(fraction > 0 && fraction < 1)) {
    throw new DatasetError(
      'DATASET_OPTIONS',
      `the held-out fraction must be between 0 and 1, got ${fraction}`,
    );
  }
  const train: InstructionRecord[] = [];
  const heldOut: InstructionRecord[] = [];
  const byCategory = new Map<string, InstructionRecord[]>();
  for (const r of records) byCategory.set(r.category, [...(byCategory.get(r.category) ?? []), r]);
  for (const [category, list] of byCategory) {
    if (list.length < 2) {
      throw new DatasetError(
        'DATASET_OPTIONS',
        `${o.trainFile}: category '${category}' has ${list.length} record; hold-out needs at least 2 per category (or give --eval)`,
      );
    }
    shuffleInPlace(list, seededRandom(`${o.seed}:held-out:${category}`));
    const k = Math.min(list.length - 1, Math.max(1, Math.round(fraction * list.length)));
    heldOut.push(...list.slice(0, k));
    train.push(...list.slice(k));
  }
  return { name: o.trainFile, train, evaluations: [{ name: 'held-out', records: heldOut }] };
}

/**
 * The single-turn instruction records of a file, each with a category. A record without one of the
 * fields, or a line that is not JSON, fails naming the file, line and field.
 */
export async function readInstructionFile(file: string): Promise<InstructionRecord[]> {
  const out: InstructionRecord[] = [];
  for await (const item of readRecords(file)) {
    const at = `${item.source.file}:${item.source.line}`;
    if (item.kind === 'invalid') throw new DatasetError('DATASET_SYNTAX', `${at}: ${item.reason}`);
    out.push(instructionRecord(item.value, at));
  }
  if (out.length === 0) throw new DatasetError('DATASET_EMPTY', `${file}: holds no records`);
  return out;
}

function instructionRecord(value: unknown, at: string): InstructionRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DatasetError('DATASET_FORMAT', `${at}: a record must be a JSON object`);
  }
  const r = value as Record<string, unknown>;
  const text = (names: string[], required: boolean): string => {
    const name = names.find((n) => r[n] !== undefined);
    const v = name === undefined ? undefined : r[name];
    if (v === undefined && !required) return '';
    if (typeof v !== 'string' || (required && v.trim() === '')) {
      throw new DatasetError(
        'DATASET_FORMAT',
        `${at}: field '${names.join("' or '")}' must be ${required ? 'a non-empty string' : 'a string'}`,
      );
    }
    return v;
  };
  return {
    instruction: text(['instruction'], true),
    context: text(['context', 'input'], false),
    response: text(['response', 'output'], true),
    category: text(['category'], true).trim(),
  };
}
