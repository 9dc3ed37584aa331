// Getting a federation's base model as its people would (issue 11): the operator records at init
// where the model can be downloaded (a Hugging Face repository pinned to a commit) beside its
// identity; a participant sees both before joining, and `fedit model fetch --federation` downloads
// it (from a local server serving the Hub's routes, through HF_ENDPOINT's stand-in --hub-url) and
// checks it against the identity. All through the real `fedit` command.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInvite, startCoordinator } from '@fedit/coordinator';
import { loadCheckpoint } from '@fedit/kernels';
import { validateFederationConfig, type FederationConfig } from '@fedit/shared';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { assertCleanFailure, fedit } from '../../test/fixtures/fedit-cli.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import { startFakeHub } from './fixtures/hub-server.ts';

const REPO = 'fedit-test/tiny-chat';
const COMMIT = 'fedcba9876543210fedcba9876543210fedcba98';

test('init records the repository, join shows it, and model fetch --federation downloads the verified model', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-model-source-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(dir, 'operator-model'));
  const fedDir = join(dir, 'federation');
  const init = await fedit(
    'coordinator',
    'init',
    fedDir,
    '--model',
    modelDir,
    '--model-repo',
    `${REPO}@${COMMIT}`,
    '--min-participants',
    '1',
    '--min-updates',
    '1',
  );
  t.is(init.code, 0, init.stderr);
  const config = JSON.parse(readFileSync(join(fedDir, 'federation.json'), 'utf8')) as FederationConfig;
  t.like(config.baseModel, { name: REPO, repo: REPO, revision: COMMIT });
  t.regex(
    init.stdout,
    new RegExp(`download {2}fedit model fetch ${REPO}@${COMMIT} --identity sha256:[0-9a-f]{64}`),
  );
  t.notRegex(init.stdout, /not a commit hash/, 'a commit is pinned');

  const coordinator = await startCoordinator({ dir: fedDir, host: '127.0.0.1', port: 0 });
  t.teardown(() => coordinator.close());
  const home = join(dir, 'alice');
  const join_ = await fedit(
    'client',
    'join',
    createInvite(fedDir, { url: coordinator.url }),
    '--yes',
    '--name',
    'alice',
    '--home',
    home,
  );
  t.is(join_.code, 0, join_.stderr);
  t.regex(join_.stdout, new RegExp(`repository {6}${REPO}@${COMMIT}\n`));
  t.regex(join_.stdout, /get the base model with: fedit model fetch --federation fed-[0-9a-f]+ --home /);

  // The participant's copy comes from "the Hub": the same checkpoint, served as the repository.
  const hub = await startFakeHub(t, { [REPO]: { folder: modelDir, revision: COMMIT } });
  const out = join(dir, 'alice-model');
  const fetched = await fedit('model', 'fetch', '--home', home, '--hub-url', hub.url, '--out', out, '--json');
  t.is(fetched.code, 0, fetched.stderr);
  const report = JSON.parse(fetched.stdout) as { identity: string; verified: boolean; dir: string };
  t.is(report.identity, config.baseModel.identity);
  t.true(report.verified);
  t.is((await loadCheckpoint(out)).identity, config.baseModel.identity);
});

test('a repository that is not owner/name is refused at init, naming the option', async (t) => {
  const r = await fedit(
    'coordinator',
    'init',
    join(tmpdir(), 'never-made'),
    '--model',
    'm',
    '--model-repo',
    'just-a-name',
  );
  assertCleanFailure(t, r, /--model-repo must be a Hugging Face repository id/, 2);
});

test('model fetch refuses a malformed repository, identity or Hub address before any download', async (t) => {
  assertCleanFailure(
    t,
    await fedit('model', 'fetch', 'owner/name@..'),
    /repo: the revision after @ must be/,
    2,
  );
  assertCleanFailure(
    t,
    await fedit('model', 'fetch', 'owner/name', '--identity', 'abc'),
    /--identity must be a model identity/,
    2,
  );
  assertCleanFailure(
    t,
    await fedit('model', 'fetch', 'owner/name', '--hub-url', 'ftp://x'),
    /--hub-url must be an http: or https: URL/,
    2,
  );
  const home = await mkdtemp(join(tmpdir(), 'fedit-no-membership-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  assertCleanFailure(
    t,
    await fedit('model', 'fetch', '--home', home),
    /name the repository to download \(fedit model fetch owner\/name@revision\), or the federation/,
    2,
  );
});

test("without a name or repository, participants see the model folder's name, not the operator's path", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-model-name-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(dir, 'SmolLM-like'));
  const { config } = await initFederationFromModel(join(dir, 'federation'), { modelDir, seed: 1 });
  t.is(config.baseModel.name, 'SmolLM-like');
  t.is(config.baseModel.repo, undefined);
});

test('a revision without a repository is not a federation config', (t) => {
  const config = JSON.parse(
    JSON.stringify({
      id: 'fed-x',
      name: 'x',
      baseModel: { identity: `sha256:${'ab'.repeat(32)}`, name: 'm', revision: COMMIT },
      lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj'] },
      training: { localSteps: 1, batchSize: 1, lr: 0.1, cutoffLen: 8, template: 'chat' },
      rounds: 1,
      participantsPerRound: { fraction: 1, minimum: 1 },
      roundDeadlineSeconds: 60,
      minUpdates: 1,
      aggregation: { rule: 'fedit' },
      limits: { maxUpdateNorm: 1, maxUploadBytes: 1024, maxExampleCount: 10 },
    }),
  ) as Record<string, unknown>;
  t.throws(() => validateFederationConfig(config), { message: /baseModel\.revision/ });
  (config.baseModel as Record<string, unknown>).repo = 'owner/name';
  t.is(validateFederationConfig(config).baseModel.repo, 'owner/name');
  (config.baseModel as Record<string, unknown>).repo = 'not a repo';
  t.throws(() => validateFederationConfig(config), { message: /baseModel\.repo/ });
});
