// The learning curve a participant sees in the desktop app, on a run where there is something to
// learn: the app's participant (Chromium through playwright-core, the real client core behind the
// development shell) and a second participant (the core's Participant, in this process) train the
// tiny random model for three rounds of 60 steps on a real coordinator on loopback. Both hold 40
// instruction / response pairs that follow one rule (an animal's sound: "<random name> asks: what
// does the cow say?" / "moo", six animals), so a held-out pair is new text answerable from the
// trained ones, and the two participants' held-out slices (4 pairs each) differ.
//
// Rules tried first that the tiny random model did not learn within this budget (the held-out
// loss fell from ~7 to ~3.6 and stayed, the answer's format learnt, not the rule): repeating a
// random word once or twice, at learning rates 2e-2 and 5e-2, up to 4 rounds of 120 steps. The
// animal rule at 5e-2 plateaued at ~2.6; at 1e-2 it falls below 0.5 in three rounds.
//
// The chart must show the round history: two series, one dot per round at that round's figures,
// yours and the federation's mean apart; and the held-out loss falls from round 1 (the untrained
// adapter) to round 3. The member card then says all three of the app's updates are in the signed
// log. FEDIT_SCREENSHOTS=1 writes the docs' pictures of it (docs/images/learning-curve.png,
// docs/screenshots/app-training.png, docs/screenshots/app-federation-signed-log.png).

import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInvite } from '@fedit/coordinator';
import { repoRoot } from '../../test/fixtures/fedit-cli.ts';
import { startDevShell } from '../src/app/dev-shell.ts';
import { seededRandom } from '../src/core/data/random.ts';
import { joinFederation, Participant } from '../src/core/federation/index.ts';
import { roundTicks } from '../renderer/src/chart-ticks.ts';
import { TEST_TRAINING, startTestFederation, tempDir } from './app-fixture.ts';
import { byId, chromiumMissing, openPage, waitForText } from './app-page.ts';

const ROUNDS = 3;
/** Pairs per participant: 10% of them (4) are its held-out slice. */
const PAIRS = 40;

/** The rule both participants' data follow: each animal's sound. */
const SOUNDS: Record<string, string> = {
  cow: 'moo',
  dog: 'woof',
  cat: 'meow',
  duck: 'quack',
  sheep: 'baa',
  owl: 'hoot',
};

/**
 * `count` chat pairs following the rule, each asked by a seeded random name (so no two prompts
 * are the same and a held-out pair is new text, answerable from the trained ones).
 */
async function writeRulePairs(path: string, seed: string, count: number): Promise<string> {
  const random = seededRandom(seed);
  const animals = Object.keys(SOUNDS);
  const name = () =>
    Array.from({ length: 3 + Math.floor(random() * 4) }, () =>
      String.fromCharCode(97 + Math.floor(random() * 26)),
    ).join('');
  const lines = Array.from({ length: count }, () => {
    const animal = animals[Math.floor(random() * animals.length)]!;
    return JSON.stringify({
      messages: [
        { role: 'user', content: `${name()} asks: what does the ${animal} say?` },
        { role: 'assistant', content: SOUNDS[animal] },
      ],
    });
  });
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

interface Dot {
  series: string;
  round: number;
  loss: number;
  cy: number;
}

test('the Training page charts three rounds of two participants learning one rule: the round history, yours apart from the federation, falling', async (t) => {
  if (chromiumMissing) return t.log(`skipped: ${chromiumMissing}`) as unknown as void;
  const started = Date.now();
  const dir = await tempDir(t, 'fedit-app-ui-curve-');
  const fed = await startTestFederation(t, dir, {
    name: 'animal sounds federation',
    rounds: ROUNDS,
    participantsPerRound: { fraction: 1, minimum: 2 },
    minUpdates: 2,
    training: { ...TEST_TRAINING, localSteps: 60, lr: 1e-2 },
  });
  const appData = await writeRulePairs(join(dir, 'app.jsonl'), 'app participant', PAIRS);
  const otherData = await writeRulePairs(join(dir, 'other.jsonl'), 'other participant', PAIRS);

  // The other participant: joined and waiting for the first round before the app joins.
  const otherHome = join(dir, 'other');
  await joinFederation(createInvite(fed.dir, { url: fed.coordinator.url }), {
    home: otherHome,
    displayName: 'other',
  });
  const other = new Participant().start({
    modelDir: fed.modelDir,
    dataFiles: [otherData],
    home: otherHome,
    threads: 1,
    reconnectionDelayMax: 500,
  });

  const shell = await startDevShell({ home: join(dir, 'home'), probeGpu: async () => false });
  t.teardown(() => shell.close());
  const { page, pageErrors } = await openPage(t);

  await page.goto(shell.url);
  await byId(page, 'create-identity').click();
  await byId(page, 'invite-input').fill(fed.invite());
  await byId(page, 'invite-check').click();
  await byId(page, 'join').click();
  await byId(page, 'federation-summary').waitFor();
  await byId(page, 'nav-model').click();
  await byId(page, 'model-path').fill(fed.modelDir);
  await byId(page, 'model-use').click();
  await page.locator('[data-testid="model-status"].ok').waitFor();
  await byId(page, 'nav-data').click();
  await byId(page, 'data-path').fill(appData);
  await byId(page, 'data-use').click();
  await byId(page, 'data-report').waitFor();
  await byId(page, 'nav-training').click();
  await byId(page, 'setting-device').selectOption('cpu');
  await byId(page, 'start').click();
  await byId(page, 'status-state')
    .filter({ hasText: /Finished/ })
    .waitFor({ timeout: 120_000 });
  await page.locator(`[data-testid="history"] tr[data-round="${ROUNDS}"]`).waitFor();
  await other;

  // The round history the page draws from, as the app keeps it.
  const history = (await shell.backend.getState()).history;
  t.deepEqual(
    history.map((e) => e.round),
    Array.from({ length: ROUNDS }, (_, i) => i + 1),
  );
  const expected = history.flatMap((e) => [
    { series: 'yours', round: e.round, loss: e.heldOutLoss },
    { series: 'federation', round: e.round, loss: e.federationHeldOutLoss },
  ]);
  t.true(
    expected.every((d) => typeof d.loss === 'number'),
    'every round has both figures',
  );
  const dots = await page.evaluate<Dot[]>(`[...document.querySelectorAll(
      '[data-testid="loss-chart"] circle')].map((c) => ({
        series: c.classList.contains('federation') ? 'federation' : 'yours',
        round: Number(c.dataset.round),
        loss: Number(c.dataset.loss),
        cy: Number(c.getAttribute('cy')),
      }))`);
  t.deepEqual(
    dots.map(({ series, round, loss }) => ({ series, round, loss })).sort(byRoundAndSeries),
    [...expected].sort(byRoundAndSeries),
    'one dot per series and round, at the round history’s figures',
  );
  // Drawn where the figures say: a lower loss sits lower on the page (a larger y).
  const byLoss = [...dots].sort((a, b) => a.loss - b.loss);
  for (let i = 1; i < byLoss.length; i++)
    if (byLoss[i]!.loss > byLoss[i - 1]!.loss) t.true(byLoss[i]!.cy < byLoss[i - 1]!.cy);
  t.is(await page.locator('[data-testid="loss-chart"] polyline').count(), 2, 'two lines');
  // Two participants with different held-out examples: the federation's mean is not yours.
  t.true(
    history.some((e) => e.heldOutLoss !== e.federationHeldOutLoss),
    'the federation’s mean differs from yours',
  );
  const [first, last] = [history[0]!, history.at(-1)!];
  t.log(
    'held-out loss by round, yours / federation: ' +
      history.map((e) => `${e.heldOutLoss?.toFixed(3)} / ${e.federationHeldOutLoss?.toFixed(3)}`).join(', '),
  );
  t.true(last.heldOutLoss! < first.heldOutLoss!, 'your held-out loss falls from round 1 to the last');
  t.true(last.federationHeldOutLoss! < first.federationHeldOutLoss!, 'and the federation’s');
  t.regex(
    (await byId(page, 'loss-note').textContent()) ?? '',
    new RegExp(`^Round ${ROUNDS}: yours [\\d.]+, federation [\\d.]+\\.`),
  );

  // The axes say what they show: the loss above, every round's number and what a point is below.
  const axes = async (selector: string) =>
    page.evaluate<string[]>(
      `[...document.querySelectorAll('[data-testid="loss-chart"] ${selector}')].map((e) => e.textContent)`,
    );
  t.deepEqual(await axes('text.title'), [
    'held-out loss, log scale (lower is better)',
    'round (each point: the shared adapter the round started from)',
  ]);
  t.deepEqual(await axes('text.round-number'), ['1', '2', '3'], 'each round is numbered under its points');
  // A single round's chart: one number, under its one point (it once read "round 1 ... round 1").
  const single = await page.evaluate<{ rounds: string[]; dotX: string[]; labelX: string[] }>(`(async () => {
    const { learningCurve } = await import('/chart.js');
    const chart = learningCurve([{ round: 1, yours: 2.5, federation: 2.25 }]);
    const all = (selector, read) => [...chart.querySelectorAll(selector)].map(read);
    return {
      rounds: all('text.round-number', (e) => e.textContent),
      dotX: all('circle', (e) => e.getAttribute('cx')),
      labelX: all('text.round-number', (e) => e.getAttribute('x')),
    };
  })()`);
  t.deepEqual(single.rounds, ['1']);
  t.deepEqual(single.dotX, [single.labelX[0], single.labelX[0]], 'the round number sits under its points');

  const forDocs = process.env.FEDIT_SCREENSHOTS === '1';
  const curve = forDocs ? join(repoRoot, 'docs', 'images') : join(dir, 'shots');
  const training = forDocs ? join(repoRoot, 'docs', 'screenshots') : join(dir, 'shots');
  await mkdir(curve, { recursive: true });
  await mkdir(training, { recursive: true });
  await byId(page, 'learning-curve').screenshot({ path: join(curve, 'learning-curve.png') });
  const height = await page.evaluate<number>(
    "Math.max(document.body.scrollHeight, document.querySelector('main')?.scrollHeight ?? 0)",
  );
  await page.setViewportSize({ width: 1280, height: Math.min(Math.max(900, height), 4000) });
  await page.screenshot({ path: join(training, 'app-training.png') });

  // The member card: every update the app sent to an aggregated round has its receipt in the
  // coordinator's signed log, the newest signed head named (receipts.ts keptReceiptsLine).
  await byId(page, 'nav-federation').click();
  const signedLog = await waitForText(
    page,
    'signed-log',
    new RegExp(
      `^your ${ROUNDS} of ${ROUNDS} updates are in the signed log \\(head of size \\d+, root sha256:[0-9a-f]{12}…\\)$`,
    ),
  );
  t.is((await shell.backend.getState()).federation?.signedLog, signedLog, 'as the app keeps it');
  // A viewport as tall as the page again: the card is taller than 900 px, and what lies below the
  // viewport of the page's scrolling main comes out blank in an element's picture.
  const cardHeight = await page.evaluate<number>(
    "Math.max(document.body.scrollHeight, document.querySelector('main')?.scrollHeight ?? 0)",
  );
  await page.setViewportSize({ width: 1280, height: Math.min(Math.max(900, cardHeight), 4000) });
  await byId(page, 'federation-summary').screenshot({
    path: join(training, 'app-federation-signed-log.png'),
  });

  t.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  t.log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

function byRoundAndSeries(a: { round: number; series: string }, b: { round: number; series: string }) {
  return a.round - b.round || a.series.localeCompare(b.series);
}

test('the round numbers under the chart: every round while few, else every few and always the last', (t) => {
  t.deepEqual(roundTicks(1, 1), [1]);
  t.deepEqual(roundTicks(1, 3), [1, 2, 3]);
  t.deepEqual(roundTicks(1, 8), [1, 2, 3, 4, 5, 6, 7, 8]);
  // 9 rounds, a step of 2: 1 3 5 7 9.
  t.deepEqual(roundTicks(1, 9), [1, 3, 5, 7, 9]);
  // 20 rounds, a step of 3: 1 4 ... 19, and 20 in place of 19 (closer than half a step).
  t.deepEqual(roundTicks(1, 20), [1, 4, 7, 10, 13, 16, 20]);
  // 10 rounds from round 5, a step of 2: 5 7 9 11 13, and 14 after it (a whole step away).
  t.deepEqual(roundTicks(5, 14), [5, 7, 9, 11, 13, 14]);
});
