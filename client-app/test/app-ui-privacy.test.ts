// The desktop app's privacy list in a federation with differential privacy, as a person reads it:
// before joining (from the invite's settings and the last round record the coordinator signed)
// and on the member card once a round has closed, with the epsilon spent so far. The page runs in
// Debian's Chromium against the real client core and a real coordinator on loopback.

import test from 'ava';
import { join } from 'node:path';
import { startDevShell } from '../src/app/dev-shell.ts';
import { byId, chromiumMissing, openPage, waitForText } from './app-page.ts';
import { TEST_TRAINING, startTestFederation, tempDir, writeDataWithBadRows } from './app-fixture.ts';

test('the privacy list says what DP limits, that the organiser still sees the update, and the epsilon spent', async (t) => {
  if (chromiumMissing) return t.log(`skipped: ${chromiumMissing}`) as unknown as void;
  const dir = await tempDir(t, 'fedit-app-ui-privacy-');
  // FEDIT_SHOTS_DIR keeps the screenshots for a person to look at (the test folder is removed).
  const shots = process.env.FEDIT_SHOTS_DIR ?? join(dir, 'shots');
  const fed = await startTestFederation(t, dir, {
    rounds: 2,
    training: { ...TEST_TRAINING, localSteps: 4 },
    differentialPrivacy: { clipNorm: 0.5, noiseMultiplier: 1.5, delta: 1e-5, epsilonBudget: 50 },
  });
  const data = await writeDataWithBadRows(dir);
  const shell = await startDevShell({ home: join(dir, 'home'), probeGpu: async () => false });
  t.teardown(() => shell.close());
  const { page, pageErrors } = await openPage(t);
  await page.goto(shell.url);
  await byId(page, 'create-identity').click();
  await byId(page, 'section-federation').waitFor();

  // Before joining: no round has closed, and the list says so.
  await byId(page, 'invite-input').fill(fed.invite());
  await byId(page, 'invite-check').click();
  await byId(page, 'invite-settings').waitFor();
  const before = (await byId(page, 'privacy').textContent()) ?? '';
  t.regex(
    before,
    /it is not hidden by secure aggregation\. Differential privacy does not hide it from the organiser either\./,
  );
  t.regex(
    before,
    /limited to a size of 0\.5, and the coordinator adds random noise \(1\.5 times that size in all\)/,
  );
  t.regex(
    before,
    /privacy spent so far: ε = 0 at δ = 0\.00001 \(budget 50\), the coordinator has shown no closed round yet\./,
  );
  t.notRegex(
    before,
    /not hidden by secure aggregation or differential privacy/,
    'no longer says there is no DP',
  );
  await byId(page, 'privacy').screenshot({ path: join(shots, 'app-privacy-dp-invite.png') });

  // Joined and trained a round: the member card shows what the round record says was spent.
  await byId(page, 'join').click();
  await byId(page, 'federation-summary').waitFor();
  await shell.backend.chooseModel(fed.modelDir);
  await shell.backend.chooseData([data]);
  await shell.backend.updateSettings({ device: 'cpu', maxThreads: 1 });
  await byId(page, 'nav-training').click();
  await byId(page, 'start').click();
  await fed.waitFor((e) => e.type === 'round-closed' && e.round === 1);
  await byId(page, 'nav-federation').click();
  const after = await waitForText(page, 'privacy', /after round [12]\./);
  const epsilon = Number(/ε = ([\d.]+) at δ/.exec(after)?.[1]);
  t.true(epsilon > 0 && epsilon < 50, `ε ${epsilon}`);
  await byId(page, 'federation-summary').screenshot({
    path: join(shots, 'app-privacy-dp-member.png'),
  });
  t.deepEqual(pageErrors, []);
});
