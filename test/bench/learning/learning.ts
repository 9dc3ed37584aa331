// `npm run bench -- learning ...`: does the federation learn? For each rule and seed, a federation of
// N participants on loopback through the real protocol (client-app/src/simulate), against pooled
// training (same total steps) and each participant alone, on the built-in tasks (--dataset builtin,
// the demo's letters family; builtin:digits; builtin:all) with held-out operands, seen and unseen
// instruction wordings; then mean and spread over the seeds.
//
// Prints one JSON line on stdout (the result: summary and every run) and, on stderr, progress and
// the readable tables. --json is accepted for symmetry with the other benches (stdout is JSON anyway).
//
//   npm run bench -- learning --rules fedit,fedavg-uniform --seeds 3 --rounds 24
//   npm run bench -- learning --dataset builtin:digits --rules fedit --seeds 1

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  baseModelFamilies,
  builtinTaskDataset,
  DEMO_ROUNDS,
  defaultDemoCacheDir,
  ensureDemoBaseModel,
  formatSummary,
  learningBenchJson,
  parseAttack,
  parseDataset,
  parseRanks,
  parseRules,
  parseSplit,
  readSettingsFile,
  runLearningBench,
  seedList,
} from '@fedit/client/simulate';

function wholeNumber(name: string, raw: string, min: number): number {
  const v = Number(raw);
  if (!(Number.isInteger(v) && v >= min))
    throw new Error(`--${name} must be a whole number >= ${min}, got "${raw}"`);
  return v;
}

function benchOptions(argv: string[]) {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      // builtin (the demo's letters family), builtin:digits or builtin:all
      dataset: { type: 'string', default: 'builtin' },
      rules: { type: 'string', default: 'fedit,fedavg-uniform' },
      seeds: { type: 'string', default: '3' },
      rounds: { type: 'string', default: String(DEMO_ROUNDS) },
      participants: { type: 'string', default: '3' },
      split: { type: 'string', default: 'shards:2' },
      // a federation settings patch (JSON file) applied to every rule and the baselines
      settings: { type: 'string' },
      'local-steps': { type: 'string' },
      'train-per-category': { type: 'string', default: '200' },
      'eval-per-category': { type: 'string', default: '24' },
      // evaluate only the last round's global adapter (faster)
      'final-only': { type: 'boolean', default: false },
      // one participant poisons its updates: scale:FACTOR, signflip or examples:COUNT
      attack: { type: 'string' },
      'attack-participant': { type: 'string', default: '0' },
      // each participant's own LoRA rank, e.g. 8,4,2 (only under a rule that takes lower ranks)
      ranks: { type: 'string' },
      threads: { type: 'string', default: '1' },
      cache: { type: 'string', default: defaultDemoCacheDir() },
      keep: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const settings = a.settings ? readSettingsFile(a.settings) : {};
  if (a['local-steps'] !== undefined) {
    settings.training = {
      ...settings.training,
      localSteps: wholeNumber('local-steps', a['local-steps'], 1),
    } as typeof settings.training;
  }
  return {
    a,
    family: parseDataset(a.dataset!),
    rules: parseRules(a.rules!),
    seeds: seedList(wholeNumber('seeds', a.seeds!, 1)),
    rounds: wholeNumber('rounds', a.rounds!, 1),
    participants: wholeNumber('participants', a.participants!, 1),
    split: parseSplit(a.split!),
    settings,
    trainPerCategory: wholeNumber('train-per-category', a['train-per-category']!, 1),
    evalPerCategory: wholeNumber('eval-per-category', a['eval-per-category']!, 1),
    threads: wholeNumber('threads', a.threads!, 1),
    ranks: a.ranks === undefined ? undefined : parseRanks(a.ranks),
    attack:
      a.attack === undefined
        ? undefined
        : {
            ...parseAttack(a.attack),
            participant: wholeNumber('attack-participant', a['attack-participant']!, 0),
          },
  };
}

export async function benchLearning(argv: string[]): Promise<void> {
  const o = benchOptions(argv);
  const log = (line: string) => process.stderr.write(line + '\n');
  const modelDir = await ensureDemoBaseModel(o.a.cache!, {
    threads: o.threads,
    recipe: { families: baseModelFamilies(o.family) },
  });
  const workDir = mkdtempSync(join(tmpdir(), 'fedit-bench-learning-'));
  try {
    const result = await runLearningBench({
      modelDir,
      dataset: (seed) =>
        builtinTaskDataset({
          seed,
          family: o.family,
          trainPerCategory: o.trainPerCategory,
          evalPerCategory: o.evalPerCategory,
        }),
      split: o.split,
      participants: o.participants,
      rounds: o.rounds,
      rules: o.rules,
      settings: o.settings,
      seeds: o.seeds,
      workDir,
      threads: o.threads,
      evalEveryRound: !o.a['final-only'],
      attack: o.attack,
      ranks: o.ranks,
      log,
    });
    log(formatSummary(result.summary, o.seeds.length));
    const config = {
      rules: o.rules,
      seeds: o.seeds,
      rounds: o.rounds,
      participants: o.participants,
      split: o.split,
      settings: o.settings,
      trainPerCategory: o.trainPerCategory,
      evalPerCategory: o.evalPerCategory,
      attack: o.attack,
      ranks: o.ranks,
      dataset: o.a.dataset,
    };
    process.stdout.write(JSON.stringify({ bench: 'learning', config, ...learningBenchJson(result) }) + '\n');
  } finally {
    if (o.a.keep) log(`kept ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}
