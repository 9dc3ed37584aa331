// The app's download step as a participant uses it: the page in Debian's Chromium (headless,
// playwright-core) through the development shell, the real client core and training worker, a real
// coordinator on loopback, and a local server standing in for the Hugging Face Hub. The join screen
// names the repository; the model page offers the download, shows it, and ends with the federation's
// model chosen. FEDIT_SCREENSHOTS=1 writes the picture to docs/screenshots/.
import test from 'ava';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInvite, startCoordinator } from '@fedit/coordinator';
import { startDevShell } from '../src/app/dev-shell.ts';
import { byId, chromiumMissing, openPage } from './app-page.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import { repoRoot } from '../../test/fixtures/fedit-cli.ts';
import { tempDir, writeTinyModel } from './app-fixture.ts';
import { startFakeHub } from './fixtures/hub-server.ts';

const REPO = 'fedit-test/tiny-chat';
const COMMIT = '8899aabbccddeeff00112233445566778899aabb';

test("a participant downloads the federation's model from the page, with progress, and it is chosen", async (t) => {
  if (chromiumMissing) return t.log(`skipped: ${chromiumMissing}`) as unknown as void;
  const dir = await tempDir(t, 'fedit-app-ui-download-');
  const modelDir = await writeTinyModel(dir, 0);
  const fedDir = join(dir, 'federation');
  await initFederationFromModel(fedDir, {
    modelDir,
    modelRepo: { repo: REPO, revision: COMMIT },
    seed: 1,
    settings: { name: 'download test', participantsPerRound: { fraction: 1, minimum: 1 }, minUpdates: 1 },
  });
  const coordinator = await startCoordinator({ dir: fedDir, host: '127.0.0.1', port: 0 });
  t.teardown(() => coordinator.close());
  const hub = await startFakeHub(t, { [REPO]: { folder: modelDir, revision: COMMIT } });
  const shell = await startDevShell({
    home: join(dir, 'home'),
    probeGpu: async () => false,
    hubUrl: hub.url,
  });
  t.teardown(() => shell.close());

  const { page, pageErrors } = await openPage(t);

  await page.goto(shell.url);
  await byId(page, 'create-identity').click();
  await byId(page, 'invite-input').fill(createInvite(fedDir, { url: coordinator.url }));
  await byId(page, 'invite-check').click();
  await byId(page, 'invite-settings').waitFor();
  t.is(await byId(page, 'model-repo').textContent(), `Downloadable from Hugging Face: ${REPO}@${COMMIT}`);
  await byId(page, 'join').click();
  await byId(page, 'federation-summary').waitFor();

  await byId(page, 'nav-model').click();
  await byId(page, 'model-download-card').waitFor();
  t.regex((await byId(page, 'model-download-source').textContent()) ?? '', new RegExp(`${REPO}@${COMMIT}`));
  const shots =
    process.env.FEDIT_SCREENSHOTS === '1' ? join(repoRoot, 'docs', 'screenshots') : join(dir, 'shots');
  await mkdir(shots, { recursive: true });
  await page.screenshot({ path: join(shots, 'app-model-download.png') });
  await byId(page, 'model-download').click();
  await page.locator('[data-testid="model-status"].ok').waitFor({ timeout: 60_000 });
  t.regex((await byId(page, 'model-status').textContent()) ?? '', /This is the federation's base model/);
  const state = await shell.backend.getState();
  t.is(state.model?.dir, join(dir, 'home', 'models', `fedit-test--tiny-chat@${COMMIT}`));
  t.true(
    hub.requests.some((r) => r.path === `/${REPO}/resolve/${COMMIT}/model.safetensors`),
    'the weights came from the Hub stand-in',
  );
  t.true(await byId(page, 'model-download-card').isHidden(), 'nothing left to download');

  await page.screenshot({ path: join(shots, 'app-model-downloaded.png') });
  t.deepEqual(pageErrors, []);
});
