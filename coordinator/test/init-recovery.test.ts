// `fedit coordinator init` interrupted at any moment. federation.json is written last: until it is
// there the folder is no federation (nothing opens it), and a new init clears what the crashed
// one left and starts over; after it, the log with its config record is complete. A folder
// without federation.json whose log or invites show it was used is a federation that lost its
// config, and init refuses to clear it. A folder with federation.json but no usable log (an init
// by an older fedit, which wrote federation.json first) is refused by start, by name, instead of
// starting and refusing every enrolment.

import test, { type ExecutionContext } from 'ava';
import { appendFileSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FeditError, generateIdentity } from '@fedit/shared';
import { federationPaths, initFederation, openFederationDir, startCoordinator } from '../src/index.ts';
import { fedit } from './helpers/cli.ts';
import {
  FAST_SETTINGS,
  initTestFederation,
  logRecords,
  startTestFederation,
  tinyModel,
} from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const init = async (root: string) =>
  initFederation(root, {
    modelDir: await tinyModel(),
    modelName: 'tiny-test',
    seed: 2,
    settings: FAST_SETTINGS,
  });

/** A new federation is usable: its log starts with its config, and a participant enrols. */
async function assertUsable(t: ExecutionContext, root: string, id: string) {
  const records = await logRecords(root);
  t.is(records.length, 1);
  t.is(records[0].kind, 'config');
  t.is(records[0].federation, id);
  const fed = await startTestFederation(t, {}, root);
  const peer = await Peer.connect(fed.target());
  t.teardown(() => peer.close());
  t.like(await peer.enrol(fed.inviteToken()), { ok: true });
}

// Each state a crash of init before federation.json leaves, made from a finished init.
const interrupted: [string, (root: string) => void][] = [
  [
    'after the keys',
    (root) => {
      const p = federationPaths(root);
      for (const d of [p.log, p.blobs]) rmSync(d, { recursive: true });
    },
  ],
  ['after the initial adapter, the log created empty', (root) => truncateSync(federationPaths(root).log, 0)],
  [
    'while appending the config record (a torn line)',
    (root) => {
      const log = federationPaths(root).log;
      truncateSync(log, Math.floor(readFileSync(log).length / 2));
    },
  ],
  ['after the config record, before federation.json', () => {}],
];
for (const [when, crash] of interrupted) {
  test(`init interrupted ${when}: a new init clears it and the federation works`, async (t) => {
    const root = await initTestFederation(t);
    const old = openFederationDir(root);
    rmSync(federationPaths(root).config);
    crash(root);
    const { config, identity } = await init(root);
    t.not(config.id, old.config.id);
    t.notDeepEqual(identity.sign.publicKey, old.identity.sign.publicKey, 'new keys');
    t.deepEqual(openFederationDir(root).identity.sign.publicKey, identity.sign.publicKey);
    await assertUsable(t, root, config.id);
  });
}

test('the real `fedit coordinator init` completes a folder an interrupted init left', async (t) => {
  const root = await initTestFederation(t);
  rmSync(federationPaths(root).config);
  const r = await fedit('coordinator', 'init', root, '--model', await tinyModel());
  t.is(r.code, 0, r.stderr);
  t.true(existsSync(federationPaths(root).config));
  t.is((await logRecords(root)).length, 1);
});

test('a folder without federation.json whose log has more than the config is refused and kept', async (t) => {
  const fed = await startTestFederation(t);
  const peer = await Peer.connect(fed.target(), generateIdentity());
  t.teardown(() => peer.close());
  t.like(await peer.enrol(fed.inviteToken()), { ok: true });
  await fed.coordinator.close();
  const paths = federationPaths(fed.root);
  const logBefore = readFileSync(paths.log);
  const keysBefore = readFileSync(paths.keys);
  rmSync(paths.config);
  const err = await t.throwsAsync(init(fed.root), { instanceOf: FeditError });
  t.is((err as FeditError).code, 'FEDERATION_EXISTS');
  t.regex(err!.message, /no federation\.json, but invites were made in it/);
  rmSync(join(fed.root, 'invites.jsonl'));
  await t.throwsAsync(init(fed.root), {
    message: /its round log holds 2 records: .*Restore federation\.json/,
  });
  t.deepEqual(readFileSync(paths.log), logBefore, 'the log is kept');
  t.deepEqual(readFileSync(paths.keys), keysBefore, 'the keys are kept');
});

test('a folder without federation.json whose log is damaged is refused and kept', async (t) => {
  const root = await initTestFederation(t);
  const paths = federationPaths(root);
  rmSync(paths.config);
  appendFileSync(paths.log, 'not a record\n');
  const before = readFileSync(paths.log);
  await t.throwsAsync(init(root), { message: /a round log that cannot be read/ });
  t.deepEqual(readFileSync(paths.log), before);
});

// What an older fedit's interrupted init left: federation.json, but the log missing or empty.
const incomplete: [string, (log: string) => void, RegExp][] = [
  ['no round log', (log) => rmSync(log), /there is no round log/],
  ['an empty round log', (log) => writeFileSync(log, ''), /is empty: it lacks the config record/],
  ['a round log of one torn line', (log) => truncateSync(log, 20), /is empty: it lacks the config record/],
];
for (const [what, damage, message] of incomplete) {
  test(`start refuses a federation.json with ${what}, naming the problem; init refuses to overwrite it`, async (t) => {
    const root = await initTestFederation(t);
    damage(federationPaths(root).log);
    const err = await t.throwsAsync(startCoordinator({ dir: root, host: '127.0.0.1', port: 0 }), {
      instanceOf: FeditError,
      message,
    });
    t.is((err as FeditError).code, 'FEDERATION_INCOMPLETE');
    t.regex(err!.message, /did not finish here, or the log was lost/);
    t.false(existsSync(join(root, 'coordinator.lock')), 'the lock is released');
    await t.throwsAsync(init(root), { message: /already holds a federation/ });
  });
}
