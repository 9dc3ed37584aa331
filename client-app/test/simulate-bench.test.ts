// The learning bench and `fedit simulate` as a person runs them: the bench's JSON line (every rule's
// federation per round, the baselines once per seed with the right step counts, the summary over
// seeds) on a tiny run, `fedit simulate` on a person's own file, and its input errors.

import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertCleanFailure, fedit, repoRoot } from '../../test/fixtures/fedit-cli.ts';
import { generateTasks, toJsonl } from '../src/demo/tasks.ts';

function bench(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((done, fail) =>
    execFile(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'test/bench/main.ts', 'learning', ...args],
      { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 },
      (error, stdout, stderr) =>
        error ? fail(new Error(`${error.message}\n${stderr}`)) : done({ stdout, stderr }),
    ),
  );
}

const inUnitInterval = (x: number) => x >= 0 && x <= 1;

test('npm run bench -- learning: one JSON line with every rule per round, baselines once, the summary', async (t) => {
  const { stdout, stderr } = await bench([
    ...['--rules', 'fedit,fedavg-uniform', '--seeds', '1', '--rounds', '2', '--local-steps', '2'],
    ...['--train-per-category', '12', '--eval-per-category', '1'],
  ]);
  const lines = stdout.trim().split('\n');
  t.is(lines.length, 1, 'one JSON line on stdout');
  const r = JSON.parse(lines[0]);
  t.is(r.bench, 'learning');
  t.deepEqual(r.evaluationSets, ['seen wordings', 'unseen wordings']);
  t.is(r.runs.length, 1);
  const [run] = r.runs;
  t.deepEqual(
    run.shards.map((s: { categories: string[] }) => s.categories),
    [
      ['reverse', 'uppercase'],
      ['shift', 'dashes'],
      ['double', 'count'],
    ],
  );
  t.deepEqual(
    run.federated.map((f: { rule: string }) => f.rule),
    ['fedit', 'fedavg-uniform'],
  );
  for (const f of run.federated) {
    t.deepEqual(
      f.rounds.map((x: { round: number }) => x.round),
      [1, 2],
    );
    for (const x of f.rounds) {
      t.regex(x.adapterHash, /^sha256:[0-9a-f]{64}$/);
      t.true(Number.isFinite(x.trainLoss) && x.trainLoss > 0, 'the mean train loss of who took part');
      t.is(x.updates, 3);
      t.true(inUnitInterval(x.accuracy['unseen wordings'].overall));
    }
    t.is(f.bytesPerRound, 2 * 3 * f.adapterBytes);
    t.true(f.adapterBytes > 0 && f.seconds > 0);
  }
  t.is(run.baselines.pooled.steps, 3 * 2 * 2, 'pooled: participants x rounds x local steps');
  t.deepEqual(
    run.baselines.alone.map((a: { steps: number }) => a.steps),
    [4, 4, 4],
  );
  t.is(run.baselines.pooled.examples, 6 * 12);
  for (const set of r.evaluationSets) {
    const rows = r.summary[set].rows;
    t.deepEqual(
      rows.map((x: { adapter: string }) => x.adapter),
      ['base model', 'pooled', 'best participant alone', 'federated fedit', 'federated fedavg-uniform'],
    );
    for (const x of rows) {
      t.is(x.overall.std, 0, 'one seed: no spread');
      t.is(x.overall.min, x.overall.max);
      t.deepEqual(Object.keys(x.byCategory).sort(), [
        'count',
        'dashes',
        'double',
        'reverse',
        'shift',
        'uppercase',
      ]);
    }
    const fedit = run.federated[0].final[set].overall;
    t.is(r.summary[set].rules.fedit.belowPooled.mean, run.baselines.pooled.accuracy[set].overall - fedit);
    t.deepEqual(
      r.summary[set].rules.fedit.byRound.map((x: { round: number; mean: number }) => [x.round, x.mean]),
      run.federated[0].rounds.map((x: { round: number; accuracy: Record<string, { overall: number }> }) => [
        x.round,
        x.accuracy[set].overall,
      ]),
    );
  }
  t.regex(stderr, /unseen wordings: exact match %/);
  t.regex(stderr, /federated fedavg-uniform/);
  t.regex(stderr, /fedit by round: 1: \d+, 2: \d+/);
});

test("fedit simulate: a person's own file, split by category, as JSON", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-simulate-cli-'));
  const data = join(dir, 'mine.jsonl');
  writeFileSync(data, toJsonl(generateTasks({ categories: ['reverse', 'count'], perCategory: 10, seed: 4 })));
  const patch = join(dir, 'patch.json');
  writeFileSync(patch, JSON.stringify({ training: { localSteps: 2 } }));
  const r = await fedit(
    ...['simulate', '--data', data, '--participants', '2', '--split', 'shards:1', '--rounds', '1'],
    ...['--settings', patch, '--held-out', '0.2', '--json'],
  );
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.deepEqual(out.evaluationSets, ['held-out']);
  const [run] = out.runs;
  t.deepEqual(
    run.shards.map((s: { categories: string[]; examples: number }) => [s.categories, s.examples]),
    [
      [['reverse'], 8],
      [['count'], 8],
    ],
  );
  t.is(run.baselines.pooled.steps, 2 * 1 * 2);
  t.deepEqual(
    out.summary['held-out'].rows.map((x: { adapter: string }) => x.adapter),
    ['base model', 'pooled', 'best participant alone', 'federated fedit'],
  );
});

test('fedit simulate refuses bad inputs before loading a model, naming the option, file and line', async (t) => {
  assertCleanFailure(
    t,
    await fedit('simulate', '--split', 'dirichlet:0'),
    /^fedit: --split must be shards:K/,
    2,
  );
  assertCleanFailure(t, await fedit('simulate', '--rule', 'nope'), /^fedit: --rule: unknown rule 'nope'/, 2);
  const dir = mkdtempSync(join(tmpdir(), 'fedit-simulate-cli-'));
  const data = join(dir, 'bad.jsonl');
  writeFileSync(
    data,
    '{"instruction": "a", "response": "b", "category": "x"}\n{"instruction": "a", "response": "b"}\n',
  );
  assertCleanFailure(
    t,
    await fedit('simulate', '--data', data),
    new RegExp(`^fedit: ${data}:2: field 'category' must be a non-empty string`),
    65,
  );
});
