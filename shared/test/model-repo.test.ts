// Where a federation's base model can be downloaded, as operators and participants write it:
// owner/name[@revision], checked at the edge with errors that name the field.
import test from 'ava';
import { formatModelRepo, isPinnedRevision, parseModelRepo } from '../src/index.ts';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';

test('owner/name and owner/name@revision parse and print back the same', (t) => {
  t.deepEqual(parseModelRepo('HuggingFaceTB/SmolLM2-135M-Instruct'), {
    repo: 'HuggingFaceTB/SmolLM2-135M-Instruct',
  });
  t.deepEqual(parseModelRepo(`Qwen/Qwen2.5-0.5B@${COMMIT}`), { repo: 'Qwen/Qwen2.5-0.5B', revision: COMMIT });
  for (const text of ['a/b', `a.b/c_d-e@${COMMIT}`, 'a/b@refs/pr/1', 'a/b@v1.0'])
    t.is(formatModelRepo(parseModelRepo(text)), text);
});

test('anything else is refused, naming the field', (t) => {
  for (const text of [
    '',
    'name',
    'a/b/c',
    '/b',
    'a/',
    'a b/c',
    'a/b@',
    'a/b@..',
    'a/b@-x',
    'a/b@x y',
    '-a/b',
  ])
    t.throws(() => parseModelRepo(text, '--model-repo'), { message: /^--model-repo/ }, JSON.stringify(text));
});

test('only a full commit hash is a pinned revision', (t) => {
  t.true(isPinnedRevision(COMMIT));
  t.false(isPinnedRevision(undefined));
  t.false(isPinnedRevision('main'));
  t.false(isPinnedRevision(COMMIT.slice(0, 12)));
  t.false(isPinnedRevision(COMMIT.toUpperCase()));
});
