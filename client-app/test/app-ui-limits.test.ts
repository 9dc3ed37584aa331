// The training controls in the page, as a participant clicks them: Pause and Resume in the middle
// of a round, and the "only when idle" limit holding training back while the computer is in use.
// The page runs in Debian's Chromium (playwright-core) against the real client core through the
// development shell, with a real coordinator on loopback (as client-app/test/app-ui.test.ts does
// for the whole first run; this file starts from a participant who has joined and chosen).

import test from 'ava';
import { join } from 'node:path';
import { startDevShell } from '../src/app/dev-shell.ts';
import { byId, chromiumMissing, openPage, waitForText } from './app-page.ts';
import { ManualMonitor } from '../src/app/system-monitor.ts';
import {
  TEST_TRAINING,
  joinAndChoose,
  startTestFederation,
  tempDir,
  writeDataWithBadRows,
} from './app-fixture.ts';

test('pause and resume in the middle of a round, and "only when idle" while the computer is in use', async (t) => {
  if (chromiumMissing) return t.log(`skipped: ${chromiumMissing}`) as unknown as void;
  const dir = await tempDir(t, 'fedit-app-ui-limits-');
  // A round long enough (a few seconds) to pause in it.
  const fed = await startTestFederation(t, dir, {
    rounds: 1,
    training: { ...TEST_TRAINING, localSteps: 400, lr: 5e-3 },
  });
  const data = await writeDataWithBadRows(dir);
  const monitor = new ManualMonitor();
  const shell = await startDevShell({ home: join(dir, 'home'), probeGpu: async () => false, monitor });
  t.teardown(() => shell.close());
  // Joined, model and data chosen (app-ui.test.ts clicks through all that).
  const backend = shell.backend;
  await joinAndChoose(backend, fed, data);
  await backend.updateSettings({ device: 'cpu', maxThreads: 1 });

  const { page, pageErrors } = await openPage(t);
  await page.goto(shell.url);
  await byId(page, 'nav-training').click();

  await byId(page, 'start').click();
  await waitForText(page, 'progress-label', /Training: step \d+ of 400/);
  t.true(await byId(page, 'pause').isVisible());
  t.false(await byId(page, 'resume').isVisible());

  // Pause: the state says so and why, the progress stops, Resume replaces Pause.
  await byId(page, 'pause').click();
  await waitForText(page, 'status-state', /^Paused$/);
  t.regex(await waitForText(page, 'status-message', /You paused/), /continues when you resume/);
  await byId(page, 'resume').waitFor({ state: 'visible' });
  t.false(await byId(page, 'pause').isVisible());
  await fed.waitFor((e) => e.type === 'disconnected');
  t.is((await backend.getState()).status.pausedBy, 'you');

  // Resume: training goes on (from its checkpoint) in the same round.
  // (The progress line can still show the step from before the pause, so wait for the buttons.)
  await byId(page, 'resume').click();
  await byId(page, 'resume').waitFor({ state: 'hidden' });
  await byId(page, 'pause').waitFor({ state: 'visible' });
  t.not(await byId(page, 'status-state').textContent(), 'Paused');
  await waitForText(page, 'progress-label', /Training: step \d+ of 400/);

  // "Only when idle", and somebody uses the computer: training waits, and the page says why; it
  // can still be paused, and there is nothing to resume (the setting decides).
  monitor.set({ idle: false });
  await byId(page, 'setting-idle').click(); // saved at once; the box shows what was saved
  await page.locator('[data-testid="setting-idle"]:checked').waitFor();
  t.true((await backend.getState()).settings.onlyWhenIdle);
  t.regex(
    await waitForText(page, 'status-message', /not in use/),
    /Waiting until the computer is not in use/,
  );
  t.is(await byId(page, 'status-state').textContent(), 'Paused');
  t.false(await byId(page, 'resume').isVisible());
  t.true(await byId(page, 'pause').isVisible());

  // Nobody at the computer: the round is finished.
  monitor.set({ idle: true });
  await waitForText(page, 'status-state', /Finished/, 120_000);
  t.deepEqual(
    (await backend.getState()).history.map((e) => [e.round, e.uploaded, e.outcome]),
    [[1, true, 'aggregated']],
  );
  t.deepEqual(pageErrors, []);
});
