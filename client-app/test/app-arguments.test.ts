// The app's edge on its own: each API method's arguments as declared in src/app/validate.ts, what
// the page's values become before the backend sees them, and the one rule per setting that the
// page's changes and the settings file are both held to.

import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_METHODS } from '../src/app/api.ts';
import { AppLog } from '../src/app/app-log.ts';
import { KeptFiles } from '../src/app/kept-files.ts';
import { DEFAULT_SETTINGS, SettingsFile } from '../src/app/settings-file.ts';
import { apiArguments, parseApiArguments } from '../src/app/validate.ts';

const machine = { cpuThreads: 4 };

test('every API method has its arguments declared, and none is asked of the methods that take none', (t) => {
  const declared = apiArguments(machine);
  t.deepEqual(Object.keys(declared).sort(), [...API_METHODS].sort());
  for (const method of ['getState', 'start', 'pause', 'resume', 'readLogs'] as const) {
    t.deepEqual(parseApiArguments(method, [], machine), []);
  }
});

test('a path left out reaches the picker as absent, whether sent as undefined or as null (JSON)', (t) => {
  t.deepEqual(parseApiArguments('chooseModel', [], machine), [undefined]);
  t.deepEqual(parseApiArguments('chooseModel', [undefined], machine), [undefined]);
  t.deepEqual(parseApiArguments('chooseData', [null], machine), [undefined]);
  t.deepEqual(parseApiArguments('chooseData', [['/a.jsonl']], machine), [['/a.jsonl']]);
  t.throws(() => parseApiArguments('chat', [null, 'hello'], machine), {
    code: 'APP_ARGUMENT',
    message: 'the chat id must be text, got null',
  });
});

test('arguments past the declared ones never reach the backend, and arguments that are not a list are refused', (t) => {
  t.deepEqual(parseApiArguments('chat', ['c1', 'hello', { evil: true }], machine), ['c1', 'hello']);
  t.deepEqual(parseApiArguments('getState', ['extra'], machine), []);
  t.throws(() => parseApiArguments('getState', { length: 0 }, machine), {
    code: 'APP_ARGUMENT',
    message: 'the arguments must be a list, got an object',
  });
});

test('a settings change holds only the settings sent, each as its rule leaves it, in a fresh object', (t) => {
  const sent = { device: 'cpu', displayName: '  Ann  ' };
  const [patch] = parseApiArguments('updateSettings', [sent], machine);
  t.deepEqual(patch, { device: 'cpu', displayName: 'Ann' });
  t.not(patch, sent);
  t.deepEqual(parseApiArguments('updateSettings', [{}], machine), [{}]);
  t.throws(() => parseApiArguments('updateSettings', [{ maxThreads: 4.5 }], machine), {
    code: 'APP_ARGUMENT',
    message: 'maxThreads must be a whole number from 0 (all cores) to 4, got 4.5',
  });
  const sparse = ['/a.jsonl'];
  sparse[2] = '/c.jsonl';
  t.throws(() => parseApiArguments('chooseData', [sparse], machine), {
    code: 'APP_ARGUMENT',
    message: 'the data files[1] must be text, got undefined',
  });
});

test('the settings file is held to the same rule per setting as the page, and a broken one falls back alone', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-app-arguments-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'app'));
  const log = new AppLog(join(dir, 'logs'));
  t.teardown(() => log.close());
  const file = new SettingsFile(join(dir, 'app', 'settings.json'), {
    files: new KeptFiles(log),
    log,
    cpuThreads: machine.cpuThreads,
  });
  const broken = { device: 'tpu', maxThreads: -1, onlyWhenIdle: 'yes', displayName: 'a\u0007b', evil: 1 };
  await writeFile(
    file.path,
    JSON.stringify({ version: 1, settings: { ...broken, onlyWhenPluggedIn: false }, takingPart: 'yes' }),
  );
  const read = await file.read();
  t.deepEqual(read.settings, { ...DEFAULT_SETTINGS, onlyWhenPluggedIn: false });
  t.false(read.takingPart);
  const lines = await log.tail();
  for (const [key, value] of Object.entries(broken)) {
    const refused = t.throws(() => parseApiArguments('updateSettings', [{ [key]: value }], machine));
    t.true(lines.includes(`${file.path}: ${refused?.message}; using the default`), refused?.message);
  }
  t.regex(lines, /takingPart must be true or false, got "yes"; using the default/);
});
