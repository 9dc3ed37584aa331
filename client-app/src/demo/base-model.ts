// The demo's built-in base model: a tiny Llama-family model (2 layers, hidden 128, 0.34 M
// parameters, one token per character) that fedit's own engine pretrains from scratch — full
// fine-tuning of every base tensor — once (1600 steps: 3.5 to 4.5 min on this project's shared
// two-core machine under load), then writes as an ordinary Hugging Face folder (config.json,
// model.safetensors, tokenizer.json, tokenizer_config.json) that every other part of fedit loads
// like a downloaded model.
//
// What it knows, and what it does not. Its corpus asks for each operation of the recipe's task
// families (tasks.ts) by terse commands (`<|im_start|>rev\n\nlamp\n` -> `pmal<|im_end|>`,
// `sort\n\n3914` -> `1349`, four command names per operation), and holds a few English
// instructions of other tasks (repeat a word, give its first or last letter), all in the chat frame
// of DEMO_CHAT_TEMPLATE. It has never seen the English instructions of the categories ("Reverse the
// word.", "Sort the digits."), so it fails them: following them is what instruction tuning, local
// or federated, has to teach, and a LoRA adapter can, because the skills are there to be unlocked.
// An adapter trained on some categories learns those categories' instructions only.
//
// Two recipes are in use: the demo's (the letters family) and, for simulations of the digits
// family, one of both families. The demo's stays alone because sharing the 0.34 M parameters with
// six more operations made its instructions slower to unlock (offline proof, 3 FedIT rounds of 30
// steps: 26-38 % against 48-54 %; the demo's 24 x 10 federation 94 % against 100 %).
//
// The pretraining is deterministic (seeded corpus, seeded initialisation; the same bytes with one
// thread or two) and cached: the folder name is DEMO_BASE_VERSION plus a hash of the recipe, the
// commands and the tasks, so later runs (and the demo's participants) reuse it.

import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import {
  DEFAULT_ADAMW,
  IGNORE_INDEX,
  Trainer,
  learningRate,
  loadCheckpoint,
  loadTokenizer,
  randomLlamaTensors,
  readWeight,
  validateSchedule,
  writeCharTokenizer,
  writeHfCheckpoint,
  type LlamaConfig,
  type NamedTensor,
  type Tokenizer,
  type TokenRow,
} from '@fedit/kernels';
import { seededRandom } from '../core/data/random.ts';
import {
  CATEGORY_SPECS,
  TASK_ALPHABET,
  TASK_FAMILIES,
  isTaskCategory,
  randomOperand,
  taskSpec,
  type BuiltinCategory,
  type TaskFamilyName,
} from './tasks.ts';

/** Bump when the recipe changes in a way the key below does not see. */
export const DEMO_BASE_VERSION = 'demo-base-v1';

/**
 * The chat template of the demo model: a user turn is `<|im_start|>` + text + newline, an
 * assistant turn is its text + `<|im_end|>`. Two special tokens of frame per exchange, where
 * ChatML spends ~20 characters (`<|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n`) and
 * the Alpaca preamble ~150: with one token per character, prompt length is what training and
 * generation pay for.
 */
export const DEMO_CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ message['content'] + '<|im_end|>' }}" +
  "{% else %}{{ '<|im_start|>' + message['content'] + '\\n' }}{% endif %}{% endfor %}";

export interface DemoBaseRecipe {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  steps: number;
  batch: number;
  /** Packed row length (several short examples per row, never attending to each other). */
  seq: number;
  lr: number;
  warmupSteps: number;
  seed: number;
  /** Share of corpus examples that are the English warm-up instructions (the rest are commands). */
  warmupShare: number;
  /** How many of each operation's SKILL_COMMANDS the corpus uses. */
  commands: number;
  /**
   * The task families whose operations the corpus asks for by command (tasks.ts). The demo's model
   * knows the letters family; a simulation of the digits family (or of both) uses a model that
   * knows both, so the demo's model does not share its capacity with tasks it never sees.
   */
  families: readonly TaskFamilyName[];
}

export const DEFAULT_DEMO_BASE_RECIPE: DemoBaseRecipe = {
  hiddenSize: 128,
  intermediateSize: 256,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 4,
  steps: 1600,
  batch: 16,
  seq: 64,
  lr: 1e-3,
  warmupSteps: 100,
  seed: 1,
  warmupShare: 0.3,
  commands: 4,
  families: ['letters'],
};

/**
 * The commands the base model's corpus asks for each operation by: several per operation, so that
 * the model picks the operation from a name rather than from one fixed string (LoRA then teaches a
 * new name, the English instruction, faster). None resembles the English instructions of tasks.ts,
 * which the base model does not follow.
 */
export const SKILL_COMMANDS: Readonly<Record<BuiltinCategory, readonly string[]>> = {
  reverse: ['rev', 'mirror', 'flip', 'backw'],
  uppercase: ['upper', 'caps', 'big', 'shout'],
  shift: ['shift', 'succ', 'inc', 'next'],
  dashes: ['dash', 'hyph', 'sep', 'spaced'],
  double: ['dbl', 'twice', 'dup', 'stutter'],
  count: ['len', 'size', 'num', 'length'],
  // the digits family (digit-tasks.ts)
  increment: ['plus', 'bump', 'incd', 'roll'],
  sort: ['sort', 'asc', 'order', 'rank'],
  swap: ['swap', 'xchg', 'trade', 'other'],
  maxdigit: ['maxd', 'peak', 'high', 'best'],
  parity: ['par', 'parity', 'oddev', 'mod2'],
  evens: ['even', 'evens', 'keep2', 'filt'],
};

/** English instructions the base model does follow: not demo categories. */
export const WARMUP_TASKS: readonly { instruction: string; solve(word: string): string }[] = [
  { instruction: 'Repeat the word.', solve: (w) => w },
  { instruction: 'Give the first letter.', solve: (w) => w[0] },
  { instruction: 'Give the last letter.', solve: (w) => w[w.length - 1] },
];

export interface PretrainProgress {
  step: number;
  steps: number;
  loss: number;
  elapsedSeconds: number;
}

export interface EnsureDemoBaseOptions {
  recipe?: Partial<DemoBaseRecipe>;
  threads?: number;
  onProgress?: (p: PretrainProgress) => void;
}

/** The categories whose commands a recipe's corpus holds, family by family. */
function corpusCategories(recipe: DemoBaseRecipe): readonly BuiltinCategory[] {
  return recipe.families.flatMap((f) => TASK_FAMILIES[f].categories);
}

/**
 * The cache key of a recipe. A recipe of the letters family alone keys as it did before the digits
 * family existed (no `families` field, the letters probe), so its cached model, bit for bit the
 * same, and every number measured on it carry over.
 */
function recipeKey(recipe: DemoBaseRecipe): string {
  const { families, ...rest } = recipe;
  const lettersOnly = families.length === 1 && families[0] === 'letters';
  const described = lettersOnly ? rest : recipe;
  const h = createHash('sha256').update(`${DEMO_BASE_VERSION}|${JSON.stringify(described)}|${TASK_ALPHABET}`);
  // What the corpus holds: commands, operand lengths and what each operation does to a probe word.
  for (const c of corpusCategories(recipe)) {
    if (isTaskCategory(c)) {
      const spec = CATEGORY_SPECS[c];
      h.update(`|${c}:${SKILL_COMMANDS[c].join(',')}:${spec.length.join('-')}:${spec.solve('fedit')}`);
    } else {
      const probe = Array.from({ length: 4 }, (_, i) => randomOperand(c, seededRandom(`probe:${i}`)));
      h.update(
        `|${c}:${SKILL_COMMANDS[c].join(',')}:${probe.map((p) => `${p}>${taskSpec(c).solve(p)}`).join(',')}`,
      );
    }
  }
  for (const w of WARMUP_TASKS) h.update(`|${w.instruction}:${w.solve('fedit')}`);
  return h.digest('hex').slice(0, 12);
}

/** The default cache folder of built-in models: `$FEDIT_DEMO_CACHE`, else under the OS temp dir. */
export function defaultDemoCacheDir(): string {
  return process.env.FEDIT_DEMO_CACHE ?? join(tmpdir(), 'fedit-demo-cache');
}

/** The command form of a task as the base model's corpus writes it. */
export function commandPrompt(category: BuiltinCategory, word: string, command = 0): string {
  return `${SKILL_COMMANDS[category][command]}\n\n${word}`;
}

/** One example of the pretraining corpus: the rendered prompt, and the answer to learn. */
function corpusExample(random: () => number, recipe: DemoBaseRecipe): { prompt: string; answer: string } {
  if (random() < recipe.warmupShare) {
    const task = WARMUP_TASKS[Math.floor(random() * WARMUP_TASKS.length)];
    const word = randomOperand('count', random);
    return { prompt: `${task.instruction}\n\n${word}`, answer: task.solve(word) };
  }
  const categories = corpusCategories(recipe);
  const category = categories[Math.floor(random() * categories.length)];
  const operand = randomOperand(category, random);
  const command = Math.floor(random() * Math.min(recipe.commands, SKILL_COMMANDS[category].length));
  return { prompt: commandPrompt(category, operand, command), answer: taskSpec(category).solve(operand) };
}

/** Token ids of one corpus example in the chat frame, with labels on the answer and its end token. */
function exampleTokens(tokenizer: Tokenizer, prompt: string, answer: string): TokenRow {
  const p = tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: prompt }]));
  const a = tokenizer.encode(answer + '<|im_end|>');
  return { inputIds: [...p, ...a], labels: [...p.map(() => IGNORE_INDEX), ...a] };
}

/** Packed rows of `seq` tokens: examples one after another, each its own segment. */
function packedRow(tokenizer: Tokenizer, random: () => number, recipe: DemoBaseRecipe): TokenRow {
  const row: Required<TokenRow> = { inputIds: [], labels: [], segments: [] };
  let segment = 0;
  for (;;) {
    const { prompt, answer } = corpusExample(random, recipe);
    const ex = exampleTokens(tokenizer, prompt, answer);
    if (row.inputIds.length + ex.inputIds.length > recipe.seq) break;
    row.inputIds.push(...ex.inputIds);
    row.labels.push(...ex.labels);
    row.segments.push(...ex.inputIds.map(() => segment));
    segment++;
  }
  return row;
}

export function demoModelConfig(
  recipe: DemoBaseRecipe,
  vocabSize: number,
  special: { bos: number; eos: number; pad: number },
): LlamaConfig {
  return {
    modelType: 'llama',
    vocabSize,
    hiddenSize: recipe.hiddenSize,
    intermediateSize: recipe.intermediateSize,
    numLayers: recipe.numLayers,
    numHeads: recipe.numHeads,
    numKvHeads: recipe.numKvHeads,
    headDim: recipe.hiddenSize / recipe.numHeads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    qkvBias: false,
    maxPositionEmbeddings: 256,
    bosTokenId: special.bos,
    eosTokenId: special.eos,
    padTokenId: special.pad,
  };
}

function finished(dir: string): boolean {
  try {
    JSON.parse(readFileSync(join(dir, 'fedit-demo.json'), 'utf8'));
    return true;
  } catch {
    return false;
  }
}

const inFlight = new Map<string, Promise<string>>();

/**
 * The built-in base model's folder under `cacheDir`, pretraining it first when it is not there.
 * The folder is built under a temporary name and renamed when complete (its `fedit-demo.json`,
 * written last, marks it finished), so an interrupted run leaves nothing half-written that a
 * later run would trust, and two processes preparing it at once both end up with one good copy.
 * The engine's weight cache is filled before returning, so participants that start together do
 * not all convert the weights at once.
 */
export function ensureDemoBaseModel(
  cacheDir: string = defaultDemoCacheDir(),
  o: EnsureDemoBaseOptions = {},
): Promise<string> {
  const recipe = { ...DEFAULT_DEMO_BASE_RECIPE, ...o.recipe };
  const dir = join(cacheDir, `${DEMO_BASE_VERSION}-${recipeKey(recipe)}`);
  let pending = inFlight.get(dir);
  if (!pending) {
    pending = prepare(dir, recipe, o).finally(() => inFlight.delete(dir));
    inFlight.set(dir, pending);
  }
  return pending;
}

async function prepare(dir: string, recipe: DemoBaseRecipe, o: EnsureDemoBaseOptions): Promise<string> {
  if (!finished(dir)) {
    mkdirSync(dirname(dir), { recursive: true });
    const work = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const summary = await pretrain(work, recipe, o);
      writeFileSync(join(work, 'fedit-demo.json'), JSON.stringify(summary, null, 2) + '\n');
      if (!finished(dir)) {
        rmSync(dir, { recursive: true, force: true });
        try {
          renameSync(work, dir);
        } catch (err) {
          // Another process finished first: its copy is as good as ours.
          if (!finished(dir)) throw err;
        }
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  await loadCheckpoint(dir);
  return dir;
}

async function pretrain(dir: string, recipe: DemoBaseRecipe, o: EnsureDemoBaseOptions) {
  const started = performance.now();
  const info = await writeCharTokenizer(dir, {
    alphabet: TASK_ALPHABET,
    chatTemplate: DEMO_CHAT_TEMPLATE,
    modelMaxLength: 256,
  });
  const config = demoModelConfig(recipe, info.vocabSize, {
    bos: info.bosTokenId,
    eos: info.eosTokenId,
    pad: info.padTokenId,
  });
  // The random initialisation, written and loaded through the ordinary checkpoint path.
  const initDir = join(dir, '.init');
  await writeHfCheckpoint(initDir, config, randomLlamaTensors(config, recipe.seed, 0.02));
  const init = await loadCheckpoint(initDir);
  const tokenizer = await loadTokenizer(dir);
  const names = [...init.store.entries.keys()];
  const initial = new Map(names.map((n) => [n, readWeight(init.store, n) as Float32Array]));
  const trainer = await Trainer.create({
    model: config,
    weights: init.store,
    fullyTrained: names,
    initial,
    batch: recipe.batch,
    seq: recipe.seq,
    optimizer: { ...DEFAULT_ADAMW, weightDecay: 0 },
    seed: recipe.seed,
    threads: o.threads,
  });
  const schedule = validateSchedule({
    kind: 'cosine',
    lr: recipe.lr,
    warmupSteps: recipe.warmupSteps,
    totalSteps: recipe.steps,
  });
  const random = seededRandom(`${DEMO_BASE_VERSION}:corpus:${recipe.seed}`);
  let loss = NaN;
  try {
    for (let s = 0; s < recipe.steps; s++) {
      const rows = Array.from({ length: recipe.batch }, () => packedRow(tokenizer, random, recipe));
      loss = (await trainer.trainStep([rows], learningRate(schedule, s))).loss;
      if (!Number.isFinite(loss)) throw new Error(`demo base model pretraining diverged at step ${s + 1}`);
      o.onProgress?.({
        step: s + 1,
        steps: recipe.steps,
        loss,
        elapsedSeconds: (performance.now() - started) / 1000,
      });
    }
    const params = await trainer.parameters();
    await writeHfCheckpoint(
      dir,
      config,
      names.map((n): NamedTensor => [n, init.store.entries.get(n)!.shape, params.get(n)!]),
    );
  } finally {
    await trainer.release();
    rmSync(initDir, { recursive: true, force: true });
  }
  return {
    version: DEMO_BASE_VERSION,
    recipe,
    finalLoss: loss,
    seconds: (performance.now() - started) / 1000,
    parameters: [...init.store.entries.values()].reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0),
  };
}
