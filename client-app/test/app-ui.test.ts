// The desktop app as a participant uses it: its page in Debian's Chromium (headless, through
// playwright-core) against the real client core, through the development shell, with a real
// coordinator on loopback. First run, the invite's settings before joining, a model that is not
// the federation's and then the right one, data with bad rows, two rounds, the chat, leaving.
//
// Screenshots of each main screen go to a temporary folder; FEDIT_SCREENSHOTS=1 writes them to
// docs/screenshots/ instead (the pictures in the docs come from this test, but for the Training
// page's and its learning curve's: app-ui-curve.test.ts, a run with something to learn).

import test from 'ava';
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startDevShell } from '../src/app/dev-shell.ts';
import { byId, chromiumMissing, openPage, waitForText } from './app-page.ts';
import { CHAT_MAX_NEW_TOKENS } from '../src/app/chat-reply.ts';
import { openChatSession } from '../src/core/index.ts';
import { readAdapter } from '@fedit/shared';
import { repoRoot } from '../../test/fixtures/fedit-cli.ts';
import {
  TEST_TRAINING,
  startTestFederation,
  tempDir,
  writeDataWithBadRows,
  writeTinyModel,
} from './app-fixture.ts';

/** Polls `check` until it holds (state the page changed through the API, not shown on screen). */
async function eventually(check: () => Promise<boolean>, timeout = 10_000): Promise<void> {
  const end = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not reached in ${timeout} ms: ${check.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a participant installs, joins with an invite, checks model and data, trains two rounds, chats and leaves', async (t) => {
  if (chromiumMissing) return t.log(`skipped: ${chromiumMissing}`) as unknown as void;
  const started = Date.now();
  const dir = await tempDir(t, 'fedit-app-ui-');
  // Rounds long enough (a second or so) to see the progress bar move.
  const fed = await startTestFederation(t, dir, {
    training: { ...TEST_TRAINING, localSteps: 200, lr: 5e-3 },
  });
  const wrongModel = await writeTinyModel(dir, 7);
  const data = await writeDataWithBadRows(dir);
  const shots =
    process.env.FEDIT_SCREENSHOTS === '1' ? join(repoRoot, 'docs', 'screenshots') : join(dir, 'shots');
  await mkdir(shots, { recursive: true });
  const shell = await startDevShell({ home: join(dir, 'home'), probeGpu: async () => false });
  t.teardown(() => shell.close());
  const { page, pageErrors } = await openPage(t);
  // The page scrolls inside its main column: grow the window to the content for the picture.
  const shoot = async (name: string, folder = shots) => {
    const height = await page.evaluate<number>(
      "Math.max(document.body.scrollHeight, document.querySelector('main')?.scrollHeight ?? 0)",
    );
    await page.setViewportSize({ width: 1280, height: Math.min(Math.max(900, height), 4000) });
    await page.screenshot({ path: join(folder, `${name}.png`) });
    await page.setViewportSize({ width: 1280, height: 900 });
  };

  // First run: what stays, what leaves, and the identity.
  await page.goto(shell.url);
  await byId(page, 'welcome').waitFor();
  const welcome = (await byId(page, 'welcome').textContent()) ?? '';
  t.regex(welcome, /Stays on this computer/);
  t.regex(welcome, /Your data/);
  t.regex(welcome, /Leaves this computer/);
  t.regex(welcome, /encrypted/);
  t.is(await byId(page, 'home-dir').textContent(), join(dir, 'home'), 'says where the keys are kept');
  await shoot('app-first-run');
  await byId(page, 'create-identity').click();
  await byId(page, 'section-federation').waitFor();
  const identity = (await shell.backend.getState()).identity!;
  t.regex(identity, /^[0-9a-f]{32}$/);
  t.is(await byId(page, 'identity').getAttribute('title'), identity, 'the sidebar shows the identity');
  const identityFile = await stat(join(dir, 'home', 'identity.json'));
  t.is(identityFile.mode & 0o077, 0, 'the identity is readable by its owner only');
  // No keychain outside Electron: the page says the key is protected by file permissions only.
  t.is((await shell.backend.getState()).identityProtection, 'file-permissions');
  t.true(await byId(page, 'identity-key-note').isVisible(), 'the page says the key is not in a keychain');

  // A mistyped invite: a clear message, nothing sent.
  await byId(page, 'invite-input').fill('fedit-invite:not-really');
  await byId(page, 'invite-check').click();
  t.regex(await waitForText(page, 'invite-error', /invite/i), /invite/i);

  // The invite's settings, read before agreeing.
  await byId(page, 'invite-input').fill(fed.invite());
  await byId(page, 'invite-check').click();
  await byId(page, 'invite-settings').waitFor();
  t.is(await byId(page, 'invite-name').textContent(), 'app test federation');
  const settings = (await byId(page, 'invite-settings').textContent()) ?? '';
  t.regex(settings, /tiny-test/);
  t.regex((await byId(page, 'privacy').textContent()) ?? '', /never leaves this computer/);
  t.regex((await byId(page, 'learning').textContent()) ?? '', /The coordinator averages everyone's updates/);
  t.regex(
    (await byId(page, 'coordinator-fingerprint').textContent()) ?? '',
    /^[0-9a-f]{4}( [0-9a-f]{4}){7}$/,
  );
  t.false(
    fed.events.some((e) => e.type === 'enrolled'),
    'reading the settings does not enrol',
  );
  await shoot('app-federation-invite');
  await byId(page, 'join').click();
  await byId(page, 'federation-summary').waitFor();
  t.is(await byId(page, 'federation-name').textContent(), 'app test federation');
  t.truthy(await fed.waitFor((e) => e.type === 'enrolled'));
  await shoot('app-federation-joined');

  // The model: another checkpoint is refused in words, the federation's is accepted.
  await byId(page, 'nav-model').click();
  await byId(page, 'model-path').fill(wrongModel);
  await byId(page, 'model-use').click();
  const problem = await waitForText(page, 'model-problem', /base model/);
  t.regex(problem, /not the federation's base model/);
  t.regex(problem, /tiny-test/);
  t.regex((await byId(page, 'model-status').getAttribute('class')) ?? '', /problem/);
  await shoot('app-model-mismatch');

  // Data chosen before a usable model: checked, but no examples yet, and the page says why.
  await byId(page, 'nav-data').click();
  await byId(page, 'data-path').fill(data);
  await byId(page, 'data-use').click();
  const noPreviews = await waitForText(page, 'data-no-previews', /model/i);
  t.regex(noPreviews, /No examples to show yet/);
  t.is(await byId(page, 'data-previews').locator('pre').count(), 0);
  await byId(page, 'nav-model').click();
  await byId(page, 'model-path').fill(fed.modelDir);
  await byId(page, 'model-use').click();
  await page.locator('[data-testid="model-status"].ok').waitFor();
  t.regex((await byId(page, 'model-status').textContent()) ?? '', /federation's base model, tiny-test/);
  await shoot('app-model');

  // The data: the report names every bad row by file:line and why, and shows previews.
  await byId(page, 'nav-data').click();
  await byId(page, 'data-path').fill(data);
  await byId(page, 'data-use').click();
  await byId(page, 'data-report').waitFor();
  t.is(await byId(page, 'data-records').locator('.tile-value').textContent(), '11');
  t.is(await byId(page, 'data-usable').locator('.tile-value').textContent(), '8');
  t.is(await byId(page, 'data-skipped-count').locator('.tile-value').textContent(), '3');
  const skipped = (await byId(page, 'data-skipped').textContent()) ?? '';
  for (const line of [3, 6, 9]) t.true(skipped.includes(`facts.jsonl:${line}`), `row ${line} is listed`);
  t.regex(skipped, /not valid JSON/);
  t.regex(skipped, /no response to learn/);
  t.regex(skipped, /empty/);
  t.true(await byId(page, 'data-histogram').isVisible());
  const previews = (await byId(page, 'data-previews').textContent()) ?? '';
  t.regex(previews, /The capital of France\?/);
  t.regex(previews, /Paris/);
  t.true((await byId(page, 'data-previews').locator('mark').count()) > 0, 'trained tokens are marked');
  t.is(await byId(page, 'data-no-previews').count(), 0, 'no "why there are no examples" once there are');
  // Quote marks in the data are plain text: « » were once the preview's own markers. The tiny
  // model's tokenizer knows only ASCII, so this renders the page's own preview module with the
  // segments the core makes (data-prompt.test.ts checks those) in this browser.
  // (A string: the test's own TypeScript knows no DOM.)
  const quoted = await page.evaluate<{ text: string; marked: string[] }>(`(async () => {
    const { preview } = await import('/data.js');
    const pre = preview([
      { text: 'Traduis «cheese» en français. ', trained: false },
      { text: 'On dit «fromage».', trained: true },
    ]);
    return { text: pre.textContent, marked: [...pre.querySelectorAll('mark')].map((m) => m.textContent) };
  })()`);
  t.deepEqual(quoted, {
    text: 'Traduis «cheese» en français. On dit «fromage».',
    marked: ['On dit «fromage».'],
  });
  await shoot('app-data');

  // Training: CPU chosen in the settings, two rounds, the history and the learning curve.
  await byId(page, 'nav-training').click();
  // Too many threads: said plainly next to the field, and nothing is saved.
  const threadsBefore = (await shell.backend.getState()).settings.maxThreads;
  await byId(page, 'setting-threads').fill('9999');
  await byId(page, 'setting-threads').press('Tab');
  t.regex(await waitForText(page, 'threads-error', /whole number/), /from 0 to \d+.*0 means all of them/);
  t.is((await shell.backend.getState()).settings.maxThreads, threadsBefore);
  t.notRegex((await byId(page, 'settings-error').textContent()) ?? '', /maxThreads/);
  await byId(page, 'setting-threads').fill(String(threadsBefore));
  await byId(page, 'setting-threads').press('Tab');
  await byId(page, 'threads-error').waitFor({ state: 'hidden' });
  await byId(page, 'setting-device').selectOption('cpu');
  await eventually(async () => (await shell.backend.getState()).settings.device === 'cpu');
  await waitForText(page, 'device-in-use', /CPU/);
  await byId(page, 'start').click();
  await waitForText(page, 'progress-label', /Training: step \d+ of 200/);
  t.regex(await waitForText(page, 'progress-text', /tokens\/s/), /left · [\d,]+ tokens\/s/);
  t.true(await byId(page, 'progress').isVisible());
  t.notRegex(
    (await byId(page, 'status-message').textContent()) ?? '',
    /round \d/i,
    'the line under the state does not repeat the round',
  );
  await shoot('app-training-progress');
  await waitForText(page, 'status-state', /Finished/, 90_000);
  await page.locator('[data-testid="history"] tr[data-round="2"]').waitFor();
  const history = (await byId(page, 'history').textContent()) ?? '';
  t.regex(history, /Combined from 1 update\b/);
  t.is(await page.locator('[data-testid="history"] tbody tr').count(), 2);
  t.true((await byId(page, 'loss-chart').locator('svg').count()) > 0, 'the learning curve is drawn');
  // Every axis label fits: none starts left of the chart's own box.
  const labelsFit = await page.evaluate<boolean>(`(() => {
    const svg = document.querySelector('[data-testid="loss-chart"] svg');
    const left = svg.getBoundingClientRect().left;
    return [...svg.querySelectorAll('text')].every((text) => text.getBoundingClientRect().left >= left);
  })()`);
  t.true(labelsFit, 'the loss axis labels are not cut off');
  // What the federation learned: both rounds' adapters on this participant's held-out examples,
  // and the federation's mean of the same (one participant: the same figures).
  t.regex(
    (await byId(page, 'loss-note').textContent()) ?? '',
    /^Round 2: yours [\d.]+, federation [\d.]+\. .*never trained on/,
    'says what is measured, and on what',
  );
  for (const series of ['yours', 'federation'])
    t.is(
      await page.locator(`[data-testid="loss-chart"] circle.${series}`).count(),
      2,
      `one ${series} point per round`,
    );
  await byId(page, 'learning-curve').screenshot({ path: join(dir, 'learning-curve.png') });
  const closed = fed.events.filter((e) => e.type === 'round-closed');
  t.deepEqual(
    closed.map((e) => e.type === 'round-closed' && e.updates),
    [1, 1],
    'the coordinator counted this participant’s update in both rounds',
  );
  await byId(page, 'show-logs').click();
  t.regex(await waitForText(page, 'logs-text', /round 2/), /aggregated from 1 update/);
  await shoot('app-training', dir);

  // Try it: the chat answers with the federation's global adapter.
  await byId(page, 'nav-chat').click();
  await byId(page, 'chat-input').fill('The capital of France?');
  await byId(page, 'chat-send').click();
  await page.locator('[data-testid="chat-reply"]:not(.streaming)').waitFor({ timeout: 60_000 });
  const reply = (await byId(page, 'chat-reply').locator('.reply-text').textContent()) ?? '';
  t.log(`the chat answered ${JSON.stringify(reply)}`);
  // The screen shows what the federation's last global adapter answers: the folder the chat used
  // holds exactly round 2's tensors, and the client core, chatting with that folder, says the same.
  // (Whether the tiny model says "Paris" after two rounds depends on the identity-seeded data order,
  // so the words themselves are not asserted.)
  const [chatFolder] = await readdir(join(dir, 'home', 'chat-adapters'));
  const usedDir = join(dir, 'home', 'chat-adapters', chatFolder);
  t.is(
    (await readAdapter(usedDir)).hash,
    (closed.at(-1) as { adapter: string }).adapter,
    'the chat used round 2’s global adapter',
  );
  const core = await openChatSession({ modelDir: fed.modelDir, adapterDir: usedDir, threads: 1 });
  let expected = '';
  for await (const piece of core.reply('The capital of France?', {
    maxNewTokens: CHAT_MAX_NEW_TOKENS,
    temperature: 0,
  }))
    expected += piece;
  await core.close();
  t.is(reply.trim(), expected.trim(), 'the page shows the global adapter’s answer');
  // Which adapter answered: the last round's, which the participant kept before the federation's
  // end closed its connection.
  const answeredBy = (await byId(page, 'chat-answered-by').textContent()) ?? '';
  t.is(
    answeredBy,
    'Answered with what the federation learned up to round 2 (the newest shared adapter).',
    'each answer says which adapter answered',
  );
  await shoot('app-chat');

  // Leaving: the membership is forgotten, the identity stays.
  await byId(page, 'nav-federation').click();
  await byId(page, 'leave').click();
  // Leaving forgets the federation here only: the question says so before it happens.
  const leaveQuestion = (await byId(page, 'leave-question').textContent()) ?? '';
  t.regex(leaveQuestion, /coordinator is not told/);
  t.regex(leaveQuestion, /ask the federation's organiser/);
  await byId(page, 'leave-confirm').click();
  await byId(page, 'invite-input').waitFor();
  const after = await shell.backend.getState();
  t.is(after.federation, undefined);
  t.is(after.identity, identity);
  t.deepEqual(await readdir(join(dir, 'home', 'federations')), [], 'the membership file is gone');

  t.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  const log = await readFile(join(dir, 'home', 'logs', 'app.log'), 'utf8');
  t.notRegex(log, /Paris|capital of France/, 'the log holds no data and no chat');
  t.log(`took ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${shots}`);
});
