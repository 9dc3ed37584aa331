// `fedit coordinator init`'s options for the limits, the aggregation rule and its settings, the
// local training settings and --settings FILE, through the real command: the values land in
// federation.json (and so in the round log's config record), and a bad value fails cleanly, naming
// the option (or the file and field), before anything is created.

import test, { type ExecutionContext } from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertCleanFailure } from '../../test/fixtures/fedit-cli.ts';
import type { FederationConfig } from '@fedit/shared';
import { fedit } from './helpers/cli.ts';
import { tempDir, tinyModel } from './helpers/federation.ts';

test('init writes the limit and aggregation options into federation.json', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit(
    'coordinator',
    'init',
    dir,
    '--model',
    await tinyModel(),
    '--max-upload-size',
    '1.5MiB',
    '--max-update-norm',
    '12.5',
    '--max-example-count',
    '5000',
    '--aggregation-rule',
    'fedavg-uniform',
  );
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as FederationConfig;
  t.deepEqual(config.limits, {
    maxUploadBytes: 1.5 * 1024 * 1024,
    maxUpdateNorm: 12.5,
    maxExampleCount: 5000,
  });
  // A rule chosen alone keeps the default clipping, and the weight cap is one round's examples.
  t.deepEqual(config.aggregation, {
    rule: 'fedavg-uniform',
    clipping: { kind: 'adaptive', multiplier: 2 },
    weightCap: 10 * 4,
  });
  t.true(config.training.scaffold, 'SCAFFOLD by default');
});

test('init without the options writes the defaults', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel());
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as FederationConfig;
  t.deepEqual(config.limits, {
    maxUploadBytes: 512 * 1024 * 1024,
    maxUpdateNorm: 1000,
    maxExampleCount: 10_000_000,
  });
  t.deepEqual(config.aggregation, {
    rule: 'fedit',
    clipping: { kind: 'adaptive', multiplier: 2 },
    weightCap: 10 * 4,
  });
});

const bad: [string, string, RegExp][] = [
  ['--max-upload-size', 'lots', /--max-upload-size must be a whole number of bytes >= 1, got "lots"/],
  ['--max-upload-size', '0.5', /--max-upload-size must be a whole number of bytes/],
  ['--max-update-norm', '-1', /--max-update-norm must be a finite positive number, got "-1"/],
  ['--max-update-norm', 'Infinity', /--max-update-norm must be a finite positive number, got "Infinity"/],
  ['--max-update-norm', '1e999', /--max-update-norm must be a finite positive number, got "1e999"/],
  ['--max-example-count', '2.5', /--max-example-count must be a whole number >= 1, got "2.5"/],
  [
    '--aggregation-rule',
    'bulyan',
    /--aggregation-rule must be one of the known rules \(fedavg-uniform, fedit, .*\), got "bulyan"/,
  ],
];
for (const [flag, value, message] of bad) {
  test(`init refuses ${flag} ${value}, naming the option, and creates nothing`, async (t) => {
    await refused(t, [flag, value], message);
  });
}

/** init with `args` fails cleanly with `message` and creates no folder. */
async function refused(
  t: ExecutionContext,
  args: string[],
  message: RegExp,
  code = 2, // exit-codes.ts: a wrong command line
): Promise<void> {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), ...args);
  assertCleanFailure(t, r, message, code);
  t.false(existsSync(dir), 'no federation folder');
}

/** init with `args` succeeds; the federation.json it wrote. */
async function initWith(t: ExecutionContext, args: string[]): Promise<FederationConfig> {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), ...args);
  t.is(r.code, 0, r.stderr);
  return JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as FederationConfig;
}

test('init writes the learning options into federation.json', async (t) => {
  const config = await initWith(t, [
    '--aggregation-rule',
    'trimmed-mean',
    '--trim-fraction',
    '0.25',
    '--weight-cap',
    '64',
    '--clip',
    'fixed:0.5',
    '--server-optimizer',
    'adam:0.02',
    '--server-beta1',
    '0.8',
    '--server-tau',
    '0.0001',
    '--freeze-lora-a',
    '--proximal-mu',
    '0.01',
    '--scaffold',
    '--lr-schedule',
    'cosine:0.1',
  ]);
  t.deepEqual(config.aggregation, {
    rule: 'trimmed-mean',
    trimFraction: 0.25,
    weightCap: 64,
    clipping: { kind: 'fixed', bound: 0.5 },
    serverOptimizer: { kind: 'adam', lr: 0.02, beta1: 0.8, tau: 0.0001 },
  });
  t.deepEqual(
    { ...config.training },
    {
      localSteps: 10,
      batchSize: 4,
      lr: 3e-4,
      cutoffLen: 256,
      template: 'alpaca',
      trainOnInputs: false,
      freezeLoraA: true,
      proximalMu: 0.01,
      scaffold: true,
      lrSchedule: { kind: 'cosine', finalFraction: 0.1 },
    },
  );
});

test('init takes krum settings and adaptive clipping', async (t) => {
  const config = await initWith(t, [
    '--aggregation-rule',
    'krum',
    '--byzantine',
    '1',
    '--krum-select',
    '2',
    '--clip',
    'adaptive:3',
    '--local-steps',
    '10',
  ]);
  t.deepEqual(config.aggregation, {
    rule: 'krum',
    byzantine: 1,
    krumSelect: 2,
    clipping: { kind: 'adaptive', multiplier: 3 },
    weightCap: 10 * 4, // the default cap follows --local-steps
  });
});

test('SCAFFOLD is on by default, off with --no-scaffold or a file saying false, and never under product-svd', async (t) => {
  t.is((await initWith(t, ['--no-scaffold'])).training.scaffold, false);
  const off = join(tempDir(t), 'off.json');
  writeFileSync(off, JSON.stringify({ training: { scaffold: false } }));
  t.is((await initWith(t, ['--settings', off])).training.scaffold, false);
  t.is((await initWith(t, ['--settings', off, '--scaffold'])).training.scaffold, true);
  t.is((await initWith(t, ['--aggregation-rule', 'median'])).training.scaffold, true);
  t.is((await initWith(t, ['--aggregation-rule', 'product-svd'])).training.scaffold, undefined);
  await refused(
    t,
    ['--aggregation-rule', 'product-svd', '--scaffold'],
    /--scaffold.*re-factors the adapter every round/,
  );
});

test('--settings FILE is merged section by section, and options given override it', async (t) => {
  const file = join(tempDir(t), 'settings.json');
  writeFileSync(
    file,
    JSON.stringify({
      rounds: 8,
      lora: { rank: 8, targets: ['q_proj', 'k_proj'] },
      training: { localSteps: 30, lr: 0.002 },
      aggregation: { rule: 'median', serverOptimizer: { kind: 'avgm', lr: 1, beta1: 0.5 } },
    }),
  );
  const config = await initWith(t, ['--settings', file, '--lr', '0.001', '--weight-cap', '50']);
  t.is(config.rounds, 8);
  t.deepEqual(config.lora, { rank: 8, alpha: 16, dropout: 0.05, targets: ['q_proj', 'k_proj'] });
  t.is(config.training.localSteps, 30, 'from the file; the option was not given');
  t.is(config.training.lr, 0.001, 'the option given wins over the file');
  t.is(config.training.batchSize, 4, "a key the file leaves out keeps the option's default");
  t.deepEqual(config.aggregation, {
    rule: 'median',
    serverOptimizer: { kind: 'avgm', lr: 1, beta1: 0.5 },
    clipping: { kind: 'adaptive', multiplier: 2 },
    weightCap: 50,
  });
});

test('--lr-schedule constant overrides a schedule from --settings', async (t) => {
  const file = join(tempDir(t), 'settings.json');
  writeFileSync(file, JSON.stringify({ training: { lrSchedule: { kind: 'linear', finalFraction: 0.5 } } }));
  const config = await initWith(t, ['--settings', file, '--lr-schedule', 'constant']);
  t.deepEqual(config.training.lrSchedule, { kind: 'constant', finalFraction: 1 });
});

const badLearning: [string[], RegExp][] = [
  [['--weight-cap', '0'], /^fedit: --weight-cap must be a whole number >= 1, got 0/],
  [['--weight-cap', 'many'], /^fedit: --weight-cap must be a number, got "many"/],
  [['--clip', 'adaptive:0'], /^fedit: --clip adaptive:M must be a positive number, got 0/],
  [['--clip', 'fixed:-1'], /^fedit: --clip fixed:B must be a positive number, got -1/],
  [['--clip', 'median:2'], /^fedit: --clip must be adaptive:M .* or fixed:B .*, got "median:2"/],
  [['--clip', 'adaptive'], /^fedit: --clip must be adaptive:M/],
  [['--server-optimizer', 'rmsprop:0.1'], /^fedit: --server-optimizer KIND must be one of/],
  [['--server-optimizer', 'adam:0'], /^fedit: --server-optimizer KIND:LR must be a positive number, got 0/],
  [['--server-optimizer', 'adam'], /^fedit: --server-optimizer must be KIND:LR/],
  [
    ['--server-optimizer', 'adam:0.1', '--server-beta2', '1'],
    /^fedit: --server-beta2 must be in \[0, 1\), got 1/,
  ],
  [['--server-beta1', '0.5'], /^fedit: --server-beta1 refines --server-optimizer KIND:LR: give that too/],
  [['--proximal-mu', '-0.1'], /^fedit: --proximal-mu must be a number in \[0, 1000\], got -0.1/],
  [['--lr-schedule', 'cosine:0'], /^fedit: --lr-schedule KIND:F must be in \(0, 1\], got 0/],
  [['--lr-schedule', 'step:0.5'], /^fedit: --lr-schedule must be one of|--lr-schedule KIND/],
  [
    ['--lr-schedule', 'cosine'],
    /^fedit: --lr-schedule must be cosine:F, linear:F .* or constant, got "cosine"/,
  ],
  [
    ['--aggregation-rule', 'trimmed-mean', '--trim-fraction', '0.5'],
    /^fedit: --trim-fraction must be in \[0, 0.5\), got 0.5/,
  ],
  [
    ['--aggregation-rule', 'krum', '--byzantine', '1.5'],
    /^fedit: --byzantine must be a whole number >= 0, got 1.5/,
  ],
  [
    ['--aggregation-rule', 'krum', '--krum-select', '0'],
    /^fedit: --krum-select must be a whole number >= 1, got 0/,
  ],
];
for (const [args, message] of badLearning) {
  test(`init refuses ${args.join(' ')}, naming the option, and creates nothing`, async (t) => {
    await refused(t, args, message);
  });
}

// requireKnownRule: a setting only another rule reads is refused, not silently ignored.
const wrongRule: [string[], RegExp][] = [
  [
    ['--trim-fraction', '0.1'],
    /^fedit: --trim-fraction: rule fedit does not use it \(it belongs to trimmed-mean\)/,
  ],
  [
    ['--aggregation-rule', 'median', '--byzantine', '1'],
    /^fedit: --byzantine: rule median does not use it \(it belongs to krum\)/,
  ],
  [
    ['--aggregation-rule', 'trimmed-mean', '--krum-select', '2'],
    /^fedit: --krum-select: rule trimmed-mean does not use it \(it belongs to krum\)/,
  ],
];
for (const [args, message] of wrongRule) {
  test(`init refuses ${args.join(' ')}: the rule does not use it`, async (t) => {
    await refused(t, args, message);
  });
}

test('a bad value from --settings is refused naming the file and the field', async (t) => {
  const dir = tempDir(t);
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const range = write(
    'range.json',
    JSON.stringify({ aggregation: { rule: 'trimmed-mean', trimFraction: 0.7 } }),
  );
  await refused(
    t,
    ['--settings', range],
    /--settings .*range\.json: aggregation\.trimFraction must be in \[0, 0\.5\)/,
  );
  const typo = write('typo.json', JSON.stringify({ aggregation: { weightCapp: 10 } }));
  await refused(
    t,
    ['--settings', typo],
    /--settings .*typo\.json: aggregation\.weightCapp is not a federation setting/,
  );
  const rule = write('rule.json', JSON.stringify({ aggregation: { byzantine: 1 } }));
  await refused(
    t,
    ['--settings', rule],
    /--settings .*rule\.json: aggregation\.byzantine: rule fedit does not use it/,
  );
  const id = write('id.json', JSON.stringify({ id: 'mine' }));
  await refused(t, ['--settings', id], /--settings .*id\.json: id cannot be set/);
  const notJson = write('bad.json', '{ rounds: 3 ');
  await refused(t, ['--settings', notJson], /--settings .*bad\.json is not valid JSON/);
  // An option given fixes the file's bad value: the file's is never used.
  const config = await initWith(t, ['--settings', range, '--trim-fraction', '0.1']);
  t.is(config.aggregation.trimFraction, 0.1);
});

test("init's help explains each learning option in one line", async (t) => {
  const r = await fedit('coordinator', 'init', '--help');
  t.is(r.code, 0);
  const help = r.stdout.replace(/\s+/g, ' ');
  for (const option of [
    '--settings <file>',
    '--weight-cap <n>',
    '--clip <kind:x>',
    '--server-optimizer <kind:lr>',
    '--server-beta1 <b>',
    '--server-beta2 <b>',
    '--server-tau <t>',
    '--freeze-lora-a',
    '--proximal-mu <mu>',
    '--scaffold',
    '--lr-schedule <kind:f>',
    '--trim-fraction <f>',
    '--byzantine <n>',
    '--krum-select <n>',
  ]) {
    t.true(help.includes(`${option} `), option);
  }
  t.regex(help, /\(default: adaptive:2\)/);
  t.regex(
    help,
    /--aggregation-rule <name> how a round combines updates: fedavg-uniform, fedit, krum, median, product-svd, trimmed-mean/,
  );
});

test("init's help says what counts toward --rounds, and how rounds select", async (t) => {
  const r = await fedit('coordinator', 'init', '--help');
  t.is(r.code, 0);
  const help = r.stdout.replace(/\s+/g, ' ');
  t.regex(
    help,
    /--rounds <n> rounds to aggregate: a round aborted for too few updates does not count and is retried/,
  );
  t.regex(help, /--min-participants <n> participants per round at least \(rounds wait for this many ready/);
  t.regex(help, /--over-selection <x> select this many times the target/);
  t.regex(help, /--quorum <n> updates at which a round closes/);
});

test('init prints what the median does not stop when rounds may count fewer than 5 updates, and nothing for krum', async (t) => {
  const init = async (args: string[]) => {
    const r = await fedit(
      'coordinator',
      'init',
      join(tempDir(t), 'fed'),
      '--model',
      await tinyModel(),
      ...args,
    );
    t.is(r.code, 0, r.stderr);
    return r.stdout;
  };
  t.regex(
    await init(['--aggregation-rule', 'median']),
    /^ {2}note: Rounds here may count as few as \d+ updates?: with fewer than 5, the median does not hold against one harmful participant/m,
  );
  t.notRegex(await init(['--aggregation-rule', 'krum']), /note:/);
});
