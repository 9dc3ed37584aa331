// The files the app keeps for itself, on their own: app/settings.json (src/app/settings-file.ts)
// and app/history-<federation>.json (src/app/history-file.ts). A damaged file is set aside, never
// lost; one that cannot be read is never written over; and what either held comes back.

import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RoundHistoryEntry } from '../src/core/federation/index.ts';
import { AppLog } from '../src/app/app-log.ts';
import { HistoryFile } from '../src/app/history-file.ts';
import { KeptFiles } from '../src/app/kept-files.ts';
import { DEFAULT_SETTINGS, SettingsFile } from '../src/app/settings-file.ts';
import { tempDir } from './app-fixture.ts';

async function appFiles(t: ExecutionContext) {
  const dir = join(await tempDir(t, 'fedit-app-files-'), 'app');
  await mkdir(dir);
  const log = new AppLog(join(dir, '..', 'logs'));
  t.teardown(() => log.close());
  const files = new KeptFiles(log);
  const settings = new SettingsFile(join(dir, 'settings.json'), { files, log, cpuThreads: 4 });
  return { dir, log, files, settings, history: new HistoryFile(dir, files) };
}

const round = (n: number, more: Partial<RoundHistoryEntry> = {}): RoundHistoryEntry => ({
  round: n,
  selected: true,
  uploaded: true,
  outcome: 'aggregated',
  ...more,
});

/** Puts a folder where `path` should be: reading it fails (EISDIR) as a locked file's read does. */
async function makeUnreadable(path: string): Promise<void> {
  await rm(path, { force: true });
  await mkdir(path);
}

// ---- settings.json ------------------------------------------------------------------------------

test('settings saved are read back as they were', async (t) => {
  const { settings } = await appFiles(t);
  t.deepEqual(await settings.read(), { settings: DEFAULT_SETTINGS }, 'no file: the defaults');
  const stored = {
    settings: { ...DEFAULT_SETTINGS, device: 'cpu' as const, maxThreads: 2, displayName: 'Ann' },
    modelDir: '/models/tiny',
    dataFiles: ['/data/a.jsonl', '/data/b.jsonl'],
    takingPart: true,
  };
  await settings.save(stored);
  t.deepEqual(await settings.read(), stored);
  t.is(JSON.parse(await readFile(settings.path, 'utf8')).version, 1);
});

test('a settings file that is not JSON, or not an object, is set aside beside the earlier one and the defaults used', async (t) => {
  const { settings, log } = await appFiles(t);
  await writeFile(settings.path, '{"version": 1, "settings": {"device": ');
  t.deepEqual(await settings.read(), { settings: DEFAULT_SETTINGS });
  t.is(await readFile(`${settings.path}.damaged`, 'utf8'), '{"version": 1, "settings": {"device": ');
  t.false(existsSync(settings.path));

  await writeFile(settings.path, '[1, 2]');
  t.deepEqual(await settings.read(), { settings: DEFAULT_SETTINGS });
  t.is(await readFile(`${settings.path}.damaged`, 'utf8'), '{"version": 1, "settings": {"device": ');
  t.is(await readFile(`${settings.path}.damaged-2`, 'utf8'), '[1, 2]');
  const lines = await log.tail();
  t.regex(
    lines,
    /settings\.json was damaged \(.*\); kept as settings\.json\.damaged, using the default settings/,
  );
  t.regex(
    lines,
    /settings\.json was damaged \(it is not a settings object\); kept as settings\.json\.damaged-2/,
  );
});

test('a setting this computer cannot take falls back alone; the other settings and choices stay', async (t) => {
  const { settings, log } = await appFiles(t);
  await writeFile(
    settings.path,
    JSON.stringify({
      version: 1,
      settings: { device: 'cpu', maxThreads: 9999, onlyWhenIdle: true },
      modelDir: '/models/tiny',
      dataFiles: ['/data/a.jsonl', 7],
    }),
  );
  const read = await settings.read();
  t.deepEqual(read.settings, { ...DEFAULT_SETTINGS, device: 'cpu', onlyWhenIdle: true });
  t.is(read.modelDir, '/models/tiny');
  t.is(read.dataFiles, undefined, 'a list with something other than paths is not used');
  t.regex(
    await log.tail(),
    /maxThreads must be a whole number from 0 \(all cores\) to 4, got 9999; using the default/,
  );
  t.false(existsSync(`${settings.path}.damaged`), 'nothing was set aside');
});

test('a settings file that cannot be read is never written over, and its choices come back once it can', async (t) => {
  const { settings, log } = await appFiles(t);
  const chosen = { settings: { ...DEFAULT_SETTINGS, maxThreads: 3 }, modelDir: '/models/tiny' };
  await settings.save(chosen);
  const kept = await readFile(settings.path, 'utf8');
  await rm(settings.path);
  await makeUnreadable(settings.path);

  t.deepEqual(await settings.read(), { settings: DEFAULT_SETTINGS });
  await settings.save({ settings: { ...DEFAULT_SETTINGS, device: 'webgpu' } });
  t.regex(await log.tail(), /settings\.json could not be read \(EISDIR.*\); it is left as it is/);
  t.false(existsSync(`${settings.path}.damaged`));

  // Readable again (the scanner let go): what was chosen before is what the app reads.
  await rm(settings.path, { recursive: true });
  await writeFile(settings.path, kept);
  t.deepEqual(await settings.read(), { ...chosen, dataFiles: undefined, takingPart: false });
});

// ---- history-<federation>.json ------------------------------------------------------------------

test('rounds recorded are kept in order, a round told again is updated, and another federation has its own', async (t) => {
  const { dir, files, history } = await appFiles(t);
  await history.open('fed-a');
  await history.record(round(2));
  await history.record(round(1, { outcome: undefined }));
  await history.record({ round: 1, selected: true, uploaded: true, outcome: 'aggregated', updates: 3 });
  const again = new HistoryFile(dir, files);
  await again.open('fed-a');
  t.deepEqual(again.entries, [round(1, { updates: 3 }), round(2)]);
  await again.open('fed-b');
  t.deepEqual(again.entries, []);
  await again.open('fed-a');
  await again.remove();
  t.false(existsSync(history.pathOf('fed-a')));
  t.deepEqual(again.entries, []);
});

test('a damaged history is set aside with its sound rounds kept, and the next damaged copy beside it', async (t) => {
  const { history, log } = await appFiles(t);
  const path = history.pathOf('fed');
  const truncated = '[{"round": 1, "selected": true, "uploaded": true, "outcome": "aggr';
  await writeFile(path, truncated);
  await history.open('fed');
  t.deepEqual(history.entries, []);
  t.is(await readFile(`${path}.damaged`, 'utf8'), truncated);
  t.false(existsSync(path));

  const partly = JSON.stringify([round(2), { round: 'three' }, null]);
  await writeFile(path, partly);
  await history.open('fed');
  t.deepEqual(history.entries, [round(2)]);
  t.is(await readFile(`${path}.damaged`, 'utf8'), truncated);
  t.is(await readFile(`${path}.damaged-2`, 'utf8'), partly);
  t.deepEqual(JSON.parse(await readFile(path, 'utf8')), [round(2)], 'the sound rounds are saved at once');
  t.regex(
    await log.tail(),
    /\(entries\[1\]\.round must be an integer, got "three"; 2 of its 3 entries are not round records\); kept as history-fed\.json\.damaged-2/,
  );

  await writeFile(path, '{"round": 4}');
  await history.open('fed');
  t.deepEqual(history.entries, []);
  t.regex(await log.tail(), /\(it is not a list of rounds\); kept as history-fed\.json\.damaged-3/);
});

test('each history entry is read by its declaration: one with a malformed field is set aside naming the field, the others kept', async (t) => {
  const { history, log } = await appFiles(t);
  const path = history.pathOf('fed');
  const saved = [
    round(1),
    round(2, { trainLoss: 0.5, examples: 10, adapterHash: `sha256:${'0'.repeat(64)}` }),
  ];
  await writeFile(path, JSON.stringify([{ ...saved[0], later: 'a newer field' }, saved[1]]));
  await history.open('fed');
  t.deepEqual(history.entries, saved, 'a field it does not declare is dropped, the round kept');
  t.false(existsSync(`${path}.damaged`));

  const cases: [Record<string, unknown>, RegExp][] = [
    [{ uploaded: 'yes' }, /entries\[1\]\.uploaded must be true or false, got "yes"/],
    [{ outcome: 'won' }, /entries\[1\]\.outcome must be one of aggregated, aborted, got "won"/],
    [{ examples: -1 }, /entries\[1\]\.examples must be from 0 to/],
    [{ adapterHash: 'abc' }, /entries\[1\]\.adapterHash must be a content hash/],
    [{ selected: undefined }, /entries\[1\]\.selected is required/],
  ];
  for (const [n, [change, named]] of cases.entries()) {
    await writeFile(path, JSON.stringify([round(1), { ...round(3), ...change }, round(4)]));
    await history.open('fed');
    t.deepEqual(history.entries, [round(1), round(4)], 'nothing else lost');
    t.deepEqual(JSON.parse(await readFile(path, 'utf8')), [round(1), round(4)]);
    const aside = n === 0 ? `${path}.damaged` : `${path}.damaged-${n + 1}`;
    t.true(existsSync(aside), aside);
    t.regex(await log.tail(), named);
    t.regex(
      await log.tail(),
      /1 of its 3 entries are not round records\); kept as history-fed\.json\.damaged/,
    );
  }
});

test('a history that cannot be read is not written over; once it can, its rounds join those of this session', async (t) => {
  const { history } = await appFiles(t);
  const path = history.pathOf('fed');
  await history.open('fed');
  await history.record(round(1));
  await history.record(round(2));
  const kept = await readFile(path, 'utf8');
  await makeUnreadable(path);

  await history.open('fed');
  t.deepEqual(history.entries, []);
  await history.record(round(3));
  t.deepEqual(history.entries, [round(3)], 'shown');
  t.false(existsSync(`${path}.damaged`));

  await rm(path, { recursive: true });
  await writeFile(path, kept);
  await history.record(round(4));
  t.deepEqual(history.entries, [round(1), round(2), round(3), round(4)], 'nothing lost');
  t.deepEqual(JSON.parse(await readFile(path, 'utf8')), history.entries);
});
