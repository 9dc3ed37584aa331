// `fedit simulate`: try aggregation rules on your own data before running a federation. N
// participants on this machine, through the real protocol, your data split across them by
// category, seeded; each rule's federated adapter against pooled training and each participant
// alone, on held-out records. See ../simulate/ and docs/learning.md.
import type { Command } from 'commander';
import { FeditError } from '@fedit/shared';
import { DEMO_ROUNDS } from '../demo/demo-rounds.ts';
import { number, wholeNumber } from './options.ts';

interface SimulateOptions {
  data?: string;
  dataset?: string;
  eval?: string;
  model?: string;
  participants: number;
  split: string;
  rounds: number;
  rule: string;
  settings?: string;
  seeds: number;
  heldOut: number;
  threads: number;
  dir?: string;
  json: boolean;
  attack?: string;
  attackParticipant: number;
  ranks?: string;
}

export function registerSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description(
      'simulate a federation on this machine with your data: each rule against pooled training and each participant alone',
    )
    .option(
      '--data <file>',
      'instruction records with a category (Dolly or Alpaca fields, JSONL or JSON); default: the built-in tasks',
    )
    .option(
      '--dataset <name>',
      "built-in tasks when there is no --data: builtin (the demo's letters family), builtin:digits or builtin:all",
    )
    .option(
      '--eval <file>',
      'held-out records to score on (default: a seeded share of each category of --data)',
    )
    .option('--model <dir>', "base model folder (default: the demo's built-in model)")
    .option('--participants <n>', 'participants', wholeNumber('--participants', 1), 3)
    .option('--split <how>', 'shards:K (K categories each) or dirichlet:ALPHA over categories', 'shards:2')
    .option('--rounds <n>', 'rounds', wholeNumber('--rounds', 1), DEMO_ROUNDS)
    .option('--rule <names>', 'aggregation rule preset(s), comma-separated', 'fedit')
    .option(
      '--settings <file>',
      'JSON federation settings patch merged over the simulation settings (all rules)',
    )
    .option('--seeds <n>', 'seeds 1..n; the tables show mean and spread', wholeNumber('--seeds', 1), 1)
    .option(
      '--held-out <fraction>',
      'share of each category held out when there is no --eval',
      number('--held-out', { above: 0, below: 1, what: 'a fraction between 0 and 1' }),
      0.1,
    )
    .option('--threads <n>', 'CPU threads per model', wholeNumber('--threads', 1), 1)
    .option(
      '--dir <dir>',
      'keep the federations and participants here (default: a temporary folder, removed)',
    )
    .option('--json', 'print the result as one JSON line instead of the tables', false)
    .option('--attack <how>', 'one participant poisons its updates: scale:FACTOR, signflip or examples:COUNT')
    .option(
      '--attack-participant <i>',
      'which participant attacks (0-based)',
      wholeNumber('--attack-participant', 0),
      0,
    )
    .option(
      '--ranks <list>',
      "each participant's own LoRA rank, comma-separated (e.g. 8,4,2); lower ranks need --rule product-svd",
    )
    .action((o: SimulateOptions) => runSimulate(o));
}

async function runSimulate(o: SimulateOptions): Promise<void> {
  const sim = await import('../simulate/index.ts');
  const { mkdirSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join, resolve } = await import('node:path');
  // Inputs first: a bad option or data file fails before any model is loaded or trained.
  const split = sim.parseSplit(o.split);
  if (o.data !== undefined && o.dataset !== undefined)
    throw new FeditError('CLI_OPTION', '--dataset names built-in tasks; give it or --data, not both');
  const family = sim.parseDataset(o.dataset ?? 'builtin');
  const rules = sim.parseRules(o.rule, '--rule');
  const settings = o.settings ? sim.readSettingsFile(o.settings) : {};
  const ranks = o.ranks === undefined ? undefined : sim.parseRanks(o.ranks);
  const attack =
    o.attack === undefined ? undefined : { ...sim.parseAttack(o.attack), participant: o.attackParticipant };
  const dataset = async (seed: number) =>
    o.data === undefined
      ? sim.builtinTaskDataset({ seed, family })
      : sim.fileDataset({ trainFile: o.data, evalFile: o.eval, heldOutFraction: o.heldOut, seed });
  if (ranks && ranks.length !== o.participants) {
    throw new FeditError(
      'CLI_OPTION',
      `--ranks gives ${ranks.length} ranks for ${o.participants} participants; give one per participant`,
    );
  }
  if (attack && attack.participant >= o.participants) {
    throw new FeditError(
      'CLI_OPTION',
      `--attack-participant must be below --participants (${o.participants}), got ${attack.participant}`,
    );
  }
  // The split of the first seed, drawn once now: a split the data cannot take fails here.
  sim.splitByCategory((await dataset(1)).train, { participants: o.participants, split, seed: 1 });
  const log = (line: string) => process.stderr.write(line + '\n');
  const modelDir =
    o.model ??
    (await sim.ensureDemoBaseModel(sim.defaultDemoCacheDir(), {
      threads: o.threads,
      recipe: { families: sim.baseModelFamilies(family) },
    }));
  const workDir = o.dir === undefined ? mkdtempSync(join(tmpdir(), 'fedit-simulate-')) : resolve(o.dir);
  mkdirSync(workDir, { recursive: true });
  try {
    const result = await sim.runLearningBench({
      modelDir,
      dataset,
      split,
      participants: o.participants,
      rounds: o.rounds,
      rules,
      settings,
      seeds: sim.seedList(o.seeds),
      workDir,
      threads: o.threads,
      evalEveryRound: false,
      attack,
      ranks,
      log,
    });
    if (o.json) process.stdout.write(JSON.stringify(sim.learningBenchJson(result)) + '\n');
    else process.stdout.write(sim.formatSummary(result.summary, o.seeds) + '\n');
  } finally {
    if (o.dir === undefined) rmSync(workDir, { recursive: true, force: true });
  }
}
