// `fedit eval --metric` as a person runs it: the model answers each prompt of a dataset and the
// answers are scored against the responses. A dataset whose responses are the model's own answers
// must score 1, one with a wrong response must score what text-metrics.ts says, and an answer must
// be what `fedit generate` says to the same prompt.

import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fedit } from '../../test/fixtures/fedit-cli.ts';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { rougeL, tokenF1 } from '../src/core/text-metrics.ts';

let dir: string;
let model: string;
const questions = ['What is 2+2?', 'Capital of France?', 'Say hi'];

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedit-cli-eval-'));
  model = await writeTinyChatModel(join(dir, 'model'));
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r) + '\n').join('');

test('eval --metric scores greedy answers against the responses, --predictions lists them', async (t) => {
  const data = join(dir, 'questions.jsonl');
  await writeFile(data, jsonl(questions.map((q) => ({ instruction: q, output: 'unknown' }))));
  const predictionsFile = join(dir, 'answers.jsonl');
  const first = await fedit(
    'eval', '--model', model, '--data', data, '--metric', 'exact-match',
    '--max-new-tokens', '6', '--predictions', predictionsFile,
  ); // prettier-ignore
  t.is(first.code, 0, first.stderr);
  t.regex(first.stdout, /^exact-match 0\.0000 {2}over 3 greedy answers of at most 6 tokens$/m);
  const answers = (await readFile(predictionsFile, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { source: string; reference: string; prediction: string });
  t.deepEqual(
    answers.map((a) => a.source),
    [1, 2, 3].map((n) => `${data}:${n}`),
  );
  // The answer is what `fedit generate` gives for the same prompt in the same template.
  const generated = await fedit(
    'generate', '--model', model, '--style', 'alpaca', '--prompt', questions[0], '--max-new-tokens', '6',
  ); // prettier-ignore
  t.is(generated.code, 0, generated.stderr);
  t.is(generated.stdout, answers[0].prediction + '\n');

  // Two responses are the model's own answers, the third is not.
  const graded = join(dir, 'graded.jsonl');
  const wrong = 'a completely different reply';
  await writeFile(
    graded,
    jsonl(questions.map((q, i) => ({ instruction: q, output: i < 2 ? answers[i].prediction : wrong }))),
  );
  const scored = await fedit(
    'eval', '--model', model, '--data', graded, '--max-new-tokens', '6', '--json',
    '--metric', 'exact-match', '--metric', 'rouge-l', '--metric', 'token-f1',
  ); // prettier-ignore
  t.is(scored.code, 0, scored.stderr);
  const r = JSON.parse(scored.stdout) as {
    examples: number;
    generation: { examples: number; maxNewTokens: number; metrics: Record<string, number> };
  };
  t.is(r.examples, 3);
  t.deepEqual(r.generation, {
    examples: 3,
    maxNewTokens: 6,
    metrics: {
      'exact-match': 2 / 3,
      'rouge-l': (1 + 1 + rougeL(answers[2].prediction, wrong)) / 3,
      'token-f1': (1 + 1 + tokenF1(answers[2].prediction, wrong)) / 3,
    },
  });
});

test('eval refuses an unknown metric, and --predictions without --metric, as usage errors', async (t) => {
  const data = join(dir, 'one.jsonl');
  await writeFile(data, jsonl([{ instruction: 'hi', output: 'hello' }]));
  const unknown = await fedit('eval', '--model', model, '--data', data, '--metric', 'bleu');
  t.is(unknown.code, 2, unknown.stderr);
  t.regex(unknown.stderr, /^fedit: --metric must be one of exact-match, token-f1, rouge-l, got "bleu"/);
  const noMetric = await fedit(
    'eval',
    '--model',
    model,
    '--data',
    data,
    '--predictions',
    join(dir, 'p.jsonl'),
  );
  t.is(noMetric.code, 2, noMetric.stderr);
  t.regex(noMetric.stderr, /--predictions needs --metric/);
});
