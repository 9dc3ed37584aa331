// Owner-only permissions on what holds updates or keys (federation/permissions.ts): created so
// by init, the blob store and the uploads, and a folder made before tightened at start, with a note.
// Windows has no such modes: skipped there.

import test from 'ava';
import { chmodSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BlobStore, federationPaths, tensorFromF32 } from '@fedit/shared';
import { initTestFederation, startTestFederation } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const posix = process.platform === 'win32' ? test.skip : test;
const modeOf = (path: string) => statSync(path).mode & 0o777;

/** Every folder and file under `dir`, with `dir` itself. */
function tree(dir: string): string[] {
  return [
    dir,
    ...readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? tree(join(dir, e.name)) : [join(dir, e.name)],
    ),
  ];
}

posix('init creates the folder, the keys and the blob store owner-only', async (t) => {
  const root = await initTestFederation(t);
  const paths = federationPaths(root);
  for (const dir of [root, join(root, 'keys'), paths.blobs, paths.uploads]) t.is(modeOf(dir), 0o700, dir);
  t.is(modeOf(paths.keys), 0o600);
  const blobs = tree(paths.blobs);
  t.true(blobs.length >= 3, 'the initial adapter is stored');
  for (const path of blobs) t.is(modeOf(path), statSync(path).isDirectory() ? 0o700 : 0o600, path);
});

posix('updates and uploads in progress are written owner-only', async (t) => {
  const fed = await startTestFederation(t);
  const peers = [await Peer.connect(fed.target()), await Peer.connect(fed.target())];
  t.teardown(() => peers.forEach((p) => p.close()));
  for (const [i, peer] of peers.entries()) await peer.join(fed.inviteToken(), `p${i}`);
  const open = await peers[0].roundOpen(1);
  t.true((await peers[0].upload(await peers[0].update(open), 2)).ok); // two chunks, not committed
  const { uploads, blobs } = federationPaths(fed.root);
  const inProgress = tree(uploads);
  t.true(
    inProgress.some((p) => statSync(p).isFile()),
    'chunks are on disk',
  );
  for (const path of inProgress) t.is(modeOf(path), statSync(path).isDirectory() ? 0o700 : 0o600, path);
  const stored = await new BlobStore(blobs).put(new Map([['w', tensorFromF32([1], new Float32Array([1]))]]));
  const file = join(blobs, stored.slice(7, 9), `${stored.slice(7)}.safetensors`);
  t.is(modeOf(file), 0o600);
  t.is(modeOf(join(blobs, stored.slice(7, 9))), 0o700);
});

posix('a folder others can read is made owner-only at start, with a note naming the paths', async (t) => {
  const root = await initTestFederation(t);
  const paths = federationPaths(root);
  const loose = [root, join(root, 'keys'), paths.blobs, ...tree(paths.blobs).slice(1)];
  for (const path of loose) chmodSync(path, statSync(path).isDirectory() ? 0o755 : 0o644);
  chmodSync(paths.keys, 0o644);
  const fed = await startTestFederation(t, {}, root);
  const note = await fed.waitFor('permissions-tightened');
  t.deepEqual([...note.paths].sort(), [...loose, paths.keys].sort());
  for (const path of [root, join(root, 'keys'), ...tree(paths.blobs)])
    t.is(modeOf(path), statSync(path).isDirectory() ? 0o700 : 0o600, path);
  t.is(modeOf(paths.keys), 0o600);
  await fed.restart();
  t.is(
    fed.events.filter((e) => e.type === 'permissions-tightened').length,
    1,
    'nothing to tighten the second time',
  );
});
