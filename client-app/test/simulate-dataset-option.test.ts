// Choosing the built-in family in `npm run bench -- learning` and `fedit simulate` (--dataset
// builtin, builtin:digits, builtin:all): a tiny bench on both families splits and scores all twelve
// categories through the real protocol; an unknown family, or --dataset with --data, fails naming
// the option before any model is loaded.

import test from 'ava';
import { execFile } from 'node:child_process';
import { assertCleanFailure, fedit, repoRoot } from '../../test/fixtures/fedit-cli.ts';
import { BUILTIN_CATEGORIES } from '../src/demo/tasks.ts';

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) =>
    execFile(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'test/bench/main.ts', 'learning', ...args],
      { cwd: repoRoot, encoding: 'utf8', timeout: 240_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') fail(error);
        else done({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    ),
  );
}

test('npm run bench -- learning --dataset builtin:all: both families, split and scored', async (t) => {
  const r = await bench([
    ...['--dataset', 'builtin:all', '--split', 'shards:4', '--rules', 'fedit', '--seeds', '1'],
    ...['--rounds', '1', '--local-steps', '1', '--train-per-category', '4', '--eval-per-category', '1'],
    '--final-only',
  ]);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.is(out.config.dataset, 'builtin:all');
  const [run] = out.runs;
  // 12 categories, 3 participants starting at categories 0, 4 and 8, 4 each: every category once.
  t.deepEqual(
    run.shards.map((s: { categories: string[] }) => s.categories),
    [BUILTIN_CATEGORIES.slice(0, 4), BUILTIN_CATEGORIES.slice(4, 8), BUILTIN_CATEGORIES.slice(8, 12)],
  );
  t.deepEqual(
    run.shards.map((s: { examples: number }) => s.examples),
    [16, 16, 16],
  );
  for (const set of out.evaluationSets) {
    for (const row of out.summary[set].rows)
      t.deepEqual(
        Object.keys(row.byCategory).sort(),
        [...BUILTIN_CATEGORIES].sort(),
        `${set} ${row.adapter}`,
      );
  }
});

test('an unknown family, or --dataset with --data, fails naming the option before any model', async (t) => {
  const r = await bench(['--dataset', 'builtin:nope']);
  t.not(r.code, 0);
  t.is(r.stdout, '');
  t.regex(
    r.stderr,
    /--dataset must be one of builtin, builtin:letters, builtin:digits, builtin:all, got "builtin:nope"/,
  );

  assertCleanFailure(
    t,
    await fedit('simulate', '--dataset', 'builtin:nope'),
    /^fedit: --dataset must be one of builtin, builtin:letters, builtin:digits, builtin:all, got "builtin:nope"/,
    2,
  );
  assertCleanFailure(
    t,
    await fedit('simulate', '--dataset', 'builtin:digits', '--data', 'mine.jsonl'),
    /^fedit: --dataset names built-in tasks; give it or --data, not both/,
    2,
  );
});
