// `fedit coordinator init` interrupted at any moment. Init writes its marker (init-in-progress)
// first and removes it last, after federation.json: until federation.json is there the folder is
// no federation (nothing opens it), and a new init that finds the marker clears what the crashed
// one wrote and starts over. Without the marker, init takes only a new or empty folder: it never
// deletes files it did not write, even ones named like its own (blobs/, keys/, log/). A folder
// whose log or invites show it was used is a federation that lost its config, and init refuses to
// clear it. A folder with federation.json but no usable log (an init by an older fedit, which
// wrote federation.json first) is refused by start, by name, instead of starting and refusing
// every enrolment.

import test, { type ExecutionContext } from 'ava';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { FeditError, federationPaths, generateIdentity } from '@fedit/shared';
import { openFederationDir, startCoordinator } from '../src/index.ts';
import { INIT_MARKER } from '../src/federation/dir.ts';
import { fedit } from './helpers/cli.ts';
import {
  FAST_SETTINGS,
  initInProcess,
  initTestFederation,
  logRecords,
  startTestFederation,
  tempDir,
  tinyModel,
} from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const init = (root: string) => initInProcess(root, FAST_SETTINGS, 2);

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

/** Every file under `dir` (relative paths, folders ending in /) with its bytes. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name).slice(dir.length + 1);
    out.set(
      entry.isDirectory() ? `${path}/` : path,
      entry.isDirectory() ? '' : readFileSync(join(dir, path), 'hex'),
    );
  }
  return out;
}

/** A finished init made to look as a crash of init before federation.json would leave it. */
function unfinish(root: string) {
  rmSync(federationPaths(root).config);
  writeFileSync(join(root, INIT_MARKER), '');
}

// Each state a crash of init before federation.json leaves (the marker written first), made from
// a finished init.
const interrupted: [string, (root: string) => void][] = [
  [
    'right after the marker',
    (root) => {
      for (const e of readdirSync(root)) if (e !== INIT_MARKER) rmSync(join(root, e), { recursive: true });
    },
  ],
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
  [
    'while writing federation.json (its temporary file left)',
    (root) => writeFileSync(join(root, '.federation.json.0123456789ab.tmp'), '{"na'),
  ],
];
for (const [when, crash] of interrupted) {
  test(`init interrupted ${when}: a new init clears it and the federation works`, async (t) => {
    const root = await initTestFederation(t);
    const old = openFederationDir(root);
    unfinish(root);
    crash(root);
    const { config, identity } = await init(root);
    t.not(config.id, old.config.id);
    t.notDeepEqual(identity.sign.publicKey, old.identity.sign.publicKey, 'new keys');
    t.deepEqual(openFederationDir(root).identity.sign.publicKey, identity.sign.publicKey);
    t.false(existsSync(join(root, INIT_MARKER)), 'the marker is removed once init finishes');
    await assertUsable(t, root, config.id);
  });
}

test('init stopped after federation.json, before removing its marker: the federation works', async (t) => {
  const root = await initTestFederation(t);
  writeFileSync(join(root, INIT_MARKER), '');
  await t.throwsAsync(init(root), { message: /already holds a federation/ });
  await assertUsable(t, root, openFederationDir(root).config.id);
});

test('the real `fedit coordinator init` completes a folder an interrupted init left', async (t) => {
  const root = await initTestFederation(t);
  unfinish(root);
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
  // As a crash between writing federation.json and removing the marker leaves it, and then
  // federation.json lost: the marker alone does not make init clear a federation that was used.
  unfinish(fed.root);
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
  unfinish(root);
  appendFileSync(paths.log, 'not a record\n');
  const before = readFileSync(paths.log);
  await t.throwsAsync(init(root), { message: /a round log that cannot be read/ });
  t.deepEqual(readFileSync(paths.log), before);
});

// `fedit coordinator init ~/work` where ~/work is someone's own folder, even one with folders
// named as init's: refused by name, nothing in it touched.
const foreignFolders: [string, (root: string) => void][] = [
  ['a blobs/ of its own', (root) => writeFileSync(join(root, 'blobs', 'thesis.txt'), 'my thesis')],
  [
    'keys/ and log/ of its own',
    (root) => {
      mkdirSync(join(root, 'keys'));
      writeFileSync(join(root, 'keys', 'coordinator-old.json'), '{}');
      writeFileSync(join(root, 'log', 'rounds.jsonl'), 'my notes\n');
    },
  ],
  ['one file', (root) => writeFileSync(join(root, 'notes.txt'), 'hello')],
];
for (const [what, fill] of foreignFolders) {
  test(`init refuses a folder that is not empty (${what}) and leaves it untouched`, async (t) => {
    const root = tempDir(t);
    for (const d of ['blobs', 'log']) mkdirSync(join(root, d));
    fill(root);
    const before = snapshot(root);
    const err = await t.throwsAsync(init(root), { instanceOf: FeditError });
    t.is((err as FeditError).code, 'FEDERATION_DIR_NOT_EMPTY');
    t.regex(err!.message, /is not empty \(it holds blobs, .*log/);
    t.deepEqual(snapshot(root), before);
    const r = await fedit('coordinator', 'init', root, '--model', await tinyModel());
    t.is(r.code, 1);
    t.regex(r.stderr, /is not empty/);
    t.deepEqual(snapshot(root), before);
  });
}

test('init refuses an interrupted init that has something else beside it, and removes nothing', async (t) => {
  const root = await initTestFederation(t);
  unfinish(root);
  writeFileSync(join(root, 'thesis.txt'), 'mine');
  const before = snapshot(root);
  const err = await t.throwsAsync(init(root), { instanceOf: FeditError });
  t.is((err as FeditError).code, 'FEDERATION_DIR_NOT_EMPTY');
  t.regex(
    err!.message,
    /interrupted `fedit coordinator init` left \(init-in-progress\), and also thesis\.txt/,
  );
  t.deepEqual(snapshot(root), before);
});

test('init takes a new folder, and an existing empty one', async (t) => {
  const empty = tempDir(t);
  const { config } = await init(empty);
  t.is(openFederationDir(empty).config.id, config.id);
  t.false(existsSync(join(empty, INIT_MARKER)));
  const fresh = join(tempDir(t), 'a', 'b');
  await init(fresh);
  t.true(existsSync(federationPaths(fresh).config));
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
