// app/ended-<federation>.json (src/app/federation-end.ts): the federation's end survives a restart,
// belongs to its own federation, goes when the federation is left, and a damaged record is set
// aside (the app then takes part again, which fetches the final adapter again).

import test from 'ava';
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppLog } from '../src/app/app-log.ts';
import { FederationEndFile, endedSentence } from '../src/app/federation-end.ts';
import { KeptFiles } from '../src/app/kept-files.ts';
import { tempDir } from './app-fixture.ts';

const END = {
  rounds: 3,
  adapterHash: `sha256:${'ab'.repeat(32)}`,
  adapterPath: '/home/me/.fedit/adapters/abab.safetensors',
  endedAt: 1_700_000_000_000,
};

async function endFile(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t, 'fedit-app-end-');
  const log = new AppLog(join(dir, 'logs'));
  t.teardown(() => log.close());
  return {
    dir: join(dir, 'app'),
    log,
    open: () => new FederationEndFile(join(dir, 'app'), new KeptFiles(log)),
  };
}

test('the end is read back after a restart, for its own federation only, and forgotten on leaving', async (t) => {
  const { dir, open } = await endFile(t);
  const first = open();
  await first.open('fed-a');
  t.is(first.current, undefined);
  await first.record(END);
  const again = open();
  await again.open('fed-a');
  t.deepEqual(again.current, END);
  await again.open('fed-b');
  t.is(again.current, undefined, "another federation's end is not this one's");
  await again.open('fed-a');
  await again.remove();
  t.false(existsSync(join(dir, 'ended-fed-a.json')));
  t.is(
    endedSentence(END),
    `the federation has ended after 3 rounds: your adapter is saved at ${END.adapterPath}`,
  );
  t.is(endedSentence({ ...END, rounds: 1 }).slice(0, 38), 'the federation has ended after 1 round');
});

test('a damaged record is set aside, named in the log, and the federation taken to be running', async (t) => {
  const { dir, log, open } = await endFile(t);
  const file = open();
  await file.open('fed-a');
  await file.record(END);
  await writeFile(join(dir, 'ended-fed-a.json'), JSON.stringify({ ...END, adapterHash: 'sha256:nope' }));
  const reread = open();
  await reread.open('fed-a');
  t.is(reread.current, undefined);
  t.deepEqual((await readdir(dir)).sort(), ['ended-fed-a.json.damaged']);
  await log.flush();
  t.regex(
    await log.tail(),
    /ended-fed-a\.json was damaged \(.*adapterHash.*\); kept as ended-fed-a\.json\.damaged, the federation is taken to be still running/,
  );
});
