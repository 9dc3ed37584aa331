// The desktop app from a participant's first minute to the federation's end, typed and clicked as a
// person would, in Debian's Chromium (playwright-core) against the real client core through the
// development shell and a real coordinator on loopback:
//
//   - the welcome says exactly what leaves the computer (the organiser sees each update; an update
//     can reveal training text), not more privacy than the protocol gives;
//   - the name is typed first, then the invite: the coordinator enrols that name (the page once
//     redrew before reading the field, and the app joined as `participant-<id>`);
//   - the federation's one round ends: the page says the federation has ended and where its adapter
//     is kept, "Save adapter…" writes the PEFT folder with its model card (a folder that holds
//     files is refused), and an app opened again after the coordinator is gone shows the end, not
//     "Connecting to the coordinator" for ever.

import test from 'ava';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCheckpoint, loraTensorSpecs } from '@fedit/kernels';
import { readAdapter } from '@fedit/shared';
import { repoRoot } from '../../test/fixtures/fedit-cli.ts';
import { startDevShell } from '../src/app/dev-shell.ts';
import { byId, chromiumMissing, openPage, waitForText } from './app-page.ts';
import { TEST_TRAINING, startTestFederation, tempDir, writeDataWithBadRows } from './app-fixture.ts';

/** One float32 update of the app fixture's LoRA on the model in `modelDir`, as the page words it. */
async function sentMegabytesOf(modelDir: string): Promise<string> {
  const { config } = await loadCheckpoint(modelDir);
  const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
  const bytes = loraTensorSpecs(config, { rank: 8, alpha: 16, dropout: 0, targets: [...targets] }).reduce(
    (sum, spec) => sum + 4 * spec.shape[0] * spec.shape[1],
    0,
  );
  const mb = bytes / 1e6;
  const words =
    mb < 1
      ? `${Math.max(1, Math.round(mb * 1000))} kB`
      : mb < 10
        ? `${mb.toFixed(1)} MB`
        : `${Math.round(mb)} MB`;
  return words.replace('.', '\\.');
}

test('a name typed before the invite is the one enrolled; at the end the page says where the adapter is and saves it as a PEFT folder, also after a restart with the coordinator gone', async (t) => {
  if (chromiumMissing) return t.log(`skipped: ${chromiumMissing}`) as unknown as void;
  const dir = await tempDir(t, 'fedit-app-ui-participant-');
  const fed = await startTestFederation(t, dir, {
    rounds: 1,
    training: { ...TEST_TRAINING, localSteps: 10 },
  });
  const data = await writeDataWithBadRows(dir);
  const sent = await sentMegabytesOf(fed.modelDir);
  const home = join(dir, 'home');
  // FEDIT_SCREENSHOTS=1 writes the docs' picture of the end (docs/screenshots/app-participant-saved.png).
  const forDocs = process.env.FEDIT_SCREENSHOTS === '1';
  const shots = process.env.FEDIT_SHOTS_DIR ?? join(dir, 'shots');
  await mkdir(shots, { recursive: true });
  let shell = await startDevShell({ home, probeGpu: async () => false });
  t.teardown(() => shell.close());

  const { page, pageErrors } = await openPage(t);
  const shoot = (name: string) =>
    page.screenshot({
      path:
        forDocs && name === 'saved'
          ? join(repoRoot, 'docs', 'screenshots', 'app-participant-saved.png')
          : join(shots, `${name}.png`),
      fullPage: true,
    });

  // The welcome: what leaves, without promising more than the protocol gives.
  await page.goto(shell.url);
  await byId(page, 'welcome').waitFor();
  const leaves = (await byId(page, 'what-leaves').textContent()) ?? '';
  t.regex(leaves, /organiser sees your update on its own/);
  t.regex(leaves, /can reveal some of your text/);
  t.notRegex(
    (await byId(page, 'welcome').textContent()) ?? '',
    /without showing anyone your data|Nothing of your data/,
  );
  await shoot('welcome');
  await byId(page, 'create-identity').click();
  await byId(page, 'section-federation').waitFor();

  // The name first, typed key by key, then a click into the invite box and the invite pasted.
  await byId(page, 'display-name').click();
  await page.keyboard.type('Ada Lovelace');
  await byId(page, 'invite-input').click();
  await byId(page, 'invite-input').fill(fed.invite());
  t.is(await byId(page, 'display-name').inputValue(), 'Ada Lovelace', 'the typed name stays in its field');
  await byId(page, 'invite-check').click();
  await byId(page, 'invite-settings').waitFor();
  t.regex(
    (await byId(page, 'coordinator-fingerprint').textContent()) ?? '',
    /^[0-9a-f]{4}( [0-9a-f]{4}){7}$/,
  );

  // The cost on this computer, before joining: measured once the model and data are chosen.
  t.regex((await byId(page, 'cost-hint').textContent()) ?? '', /Choose the base model and your data/);
  t.true(await byId(page, 'cost-measure').isDisabled());
  await shell.backend.chooseModel(fed.modelDir);
  await shell.backend.chooseData([data]);
  await shell.backend.updateSettings({ device: 'cpu', maxThreads: 1 });
  await byId(page, 'cost-measure').click();
  const cost = await waitForText(page, 'cost', /A round takes/);
  t.regex(
    cost,
    /A round takes less than a minute on the CPU here: 10 steps of \d+\.\d\d s \(the median of 3 steps measured just now\)/,
  );
  t.regex(cost, new RegExp(`sends about ${sent}: one update of the adapter`));
  t.regex(cost, /files take about [\d.]+ [kM]B of disk here/);
  await byId(page, 'cost-card').scrollIntoViewIfNeeded();
  await shoot('cost');
  t.false(
    fed.events.some((e) => e.type === 'enrolled'),
    'measuring the cost does not enrol',
  );
  await byId(page, 'join').click();
  await byId(page, 'federation-summary').waitFor();
  const enrolled = await fed.waitFor((e) => e.type === 'enrolled');
  t.is(
    enrolled.type === 'enrolled' && enrolled.displayName,
    'Ada Lovelace',
    'the coordinator enrolled the typed name',
  );
  t.is(await byId(page, 'joined-as').textContent(), 'Ada Lovelace');
  t.is((await shell.backend.getState()).settings.displayName, 'Ada Lovelace');
  await shoot('joined');

  // The federation's one round (model and data were chosen before joining).
  await byId(page, 'nav-training').click();
  t.false(await byId(page, 'adapter-card').isVisible(), 'nothing to save before a round aggregated');
  await byId(page, 'start').click();
  await waitForText(page, 'status-state', /^Finished/, 120_000);
  const ended = await waitForText(page, 'status-message', /federation has ended/);
  const { ended: end } = await shell.backend.getState();
  t.truthy(end, 'the state carries the end');
  t.is(ended, `The federation has ended after 1 round: your adapter is saved at ${end!.adapterPath}`);
  t.regex(end!.adapterPath, /\.safetensors$/);
  t.regex((await byId(page, 'adapter-ended').textContent()) ?? '', /has ended after 1 round/);
  t.false(await byId(page, 'progress').isVisible());
  await shoot('ended');

  // Save adapter…: a folder that holds files is refused; a new one gets the PEFT folder.
  const busyFolder = join(dir, 'not-empty');
  await mkdir(busyFolder);
  await writeFile(join(busyFolder, 'notes.txt'), 'mine\n');
  await byId(page, 'adapter-path').fill(busyFolder);
  await byId(page, 'adapter-use').click();
  t.regex(await waitForText(page, 'adapter-error', /not empty/), /choose a new or empty folder/);
  t.deepEqual(await readdir(busyFolder), ['notes.txt'], 'nothing written into it');
  const out = join(dir, 'federated-adapter');
  await byId(page, 'adapter-path').fill(out);
  await byId(page, 'adapter-use').click();
  const saved = await waitForText(page, 'adapter-saved', /Saved round 1's final adapter/);
  t.true(saved.includes(out));
  t.false(await byId(page, 'adapter-error').isVisible());
  const adapter = await readAdapter(out);
  t.is(adapter.hash, end!.adapterHash, "the folder holds the federation's final adapter");
  t.is(adapter.metadata.extra?.template, 'chat');
  const card = await readFile(join(out, 'README.md'), 'utf8');
  t.regex(card, /app test federation/);
  t.regex(card, /fedit audit/);
  await shoot('saved');

  // Opened again with the coordinator gone: the end, the adapter, no "Connecting" for ever.
  await shell.close();
  await fed.coordinator.close();
  shell = await startDevShell({ home, probeGpu: async () => false });
  const reopened = await shell.backend.getState();
  t.is(reopened.status.state, 'finished');
  t.is(reopened.ended?.adapterHash, end!.adapterHash);
  await shell.backend.start();
  t.is((await shell.backend.getState()).status.state, 'finished', 'Start does not try to connect');
  await page.goto(`${shell.url}#training`);
  t.regex(await waitForText(page, 'status-state', /Finished/), /Finished/);
  t.regex(await waitForText(page, 'status-message', /saved at/), /your adapter is saved at/);
  t.false(await byId(page, 'start').isVisible());
  t.notRegex((await byId(page, 'status-state').textContent()) ?? '', /Connecting/);
  t.deepEqual(pageErrors, []);
});
