// The app's download step (src/app/model-download.ts) through the real backend and its training
// worker: after joining a federation whose operator named the model's repository, the page asks
// for the download (through dispatch, as the page calls), sees its progress, and ends with the
// federation's model chosen; a repository serving another model fails, says why, and chooses nothing.
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInvite, startCoordinator } from '@fedit/coordinator';
import { loadCheckpoint } from '@fedit/kernels';
import type { AppEvent, ModelDownload } from '../src/app/api.ts';
import { AppBackend } from '../src/app/backend.ts';
import { callBackend } from '../src/app/dispatch.ts';
import { inProcessWorker } from '../src/app/in-process-worker.ts';
import { WorkerProcessLink } from '../src/app/worker-link.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import type { ModelRepo } from '@fedit/shared';
import { tempDir, writeTinyModel } from './app-fixture.ts';
import { startFakeHub } from './fixtures/hub-server.ts';

const REPO = 'fedit-test/tiny-chat';
const COMMIT = '00112233445566778899aabbccddeeff00112233';

/** A federation on a tiny model (seed 0) whose config names `modelRepo`, a backend joined to it. */
async function joinedBackend(t: ExecutionContext, modelRepo: ModelRepo | undefined, servedSeed = 0) {
  const dir = await tempDir(t, 'fedit-app-download-');
  const modelDir = await writeTinyModel(dir, 0);
  const fedDir = join(dir, 'federation');
  await initFederationFromModel(fedDir, {
    modelDir,
    modelRepo,
    seed: 1,
    settings: { participantsPerRound: { fraction: 1, minimum: 1 }, minUpdates: 1 },
  });
  const coordinator = await startCoordinator({ dir: fedDir, host: '127.0.0.1', port: 0 });
  t.teardown(() => coordinator.close());
  const served = servedSeed === 0 ? modelDir : await writeTinyModel(dir, servedSeed);
  const hub = await startFakeHub(t, { [REPO]: { folder: served, revision: COMMIT } });
  const home = join(dir, 'home');
  const backend = await AppBackend.open({
    home,
    worker: new WorkerProcessLink(inProcessWorker),
    probeGpu: async () => false,
    hubUrl: hub.url,
  });
  t.teardown(() => backend.close());
  await backend.createIdentity();
  const invite = createInvite(fedDir, { url: coordinator.url });
  const inspected = await backend.inspectInvite(invite); // the join screen, before agreeing
  const joined = await backend.joinFederation(invite);
  const downloads: ModelDownload[] = [];
  backend.onEvent((e: AppEvent) => {
    if (e.type === 'state' && e.state.modelDownload) downloads.push(e.state.modelDownload);
  });
  return { backend, inspected, joined, modelDir, home, downloads };
}

test("after joining, the app downloads the federation's model with progress, verifies it and chooses it", async (t) => {
  const { backend, inspected, joined, modelDir, home, downloads } = await joinedBackend(t, {
    repo: REPO,
    revision: COMMIT,
  });
  t.like(inspected.baseModel, { repo: REPO, revision: COMMIT }, 'the join screen shows the repository');
  t.like(joined.federation?.baseModel, { repo: REPO, revision: COMMIT });
  t.is(joined.model, undefined, 'no model yet');

  const state = (await callBackend(backend, 'downloadModel', [])) as Awaited<
    ReturnType<AppBackend['getState']>
  >;
  const { identity } = await loadCheckpoint(modelDir, { cacheDir: join(home, '..', 'check-cache') });
  const dir = join(home, 'models', `fedit-test--tiny-chat@${COMMIT}`);
  t.deepEqual(state.model, { dir, ok: true, identity });
  t.like(state.modelDownload, { source: `${REPO}@${COMMIT}`, dir, state: 'done' });
  t.true(state.modelDownload!.total > 0 && state.modelDownload!.done === state.modelDownload!.total);
  t.true(
    downloads.some((d) => d.state === 'downloading' && d.total > 0),
    'the page saw the download in progress',
  );
  t.false(existsSync(dir + '.partial'));
  t.is((await backend.getState()).model?.dir, dir, 'kept as the chosen model');
});

test('a repository that serves another model fails the download, says why, and chooses nothing', async (t) => {
  const { backend, home } = await joinedBackend(t, { repo: REPO, revision: COMMIT }, 1);
  const error = await t.throwsAsync(callBackend(backend, 'downloadModel', []));
  t.regex(error!.message, /not the federation's sha256:/);
  const state = await backend.getState();
  t.is(state.model, undefined);
  t.like(state.modelDownload, { state: 'failed' });
  t.regex(state.modelDownload!.problem!, /it was removed/);
  t.false(existsSync(join(home, 'models', `fedit-test--tiny-chat@${COMMIT}`)));
});

test('a federation that names no repository has nothing to download, and says so', async (t) => {
  const { backend } = await joinedBackend(t, undefined);
  const error = await t.throwsAsync(callBackend(backend, 'downloadModel', []));
  t.regex(error!.message, /does not say where to download its base model/);
});
