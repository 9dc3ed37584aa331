// `fedit coordinator start` as an operator runs it (a child process): `--port 0` prints the port
// it got; SIGTERM ends it within its grace period even while a peer holds a half-sent HTTP request
// and a participant is connected, and the folder is then free (`coordinator revoke` works); with
// `--tls-cert/--tls-key` it serves HTTPS (a throwaway certificate made with openssl), and a key
// that does not fit is named at start.

import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseInvite, publicIdentity } from '@fedit/shared';
import { createInvite, openFederationDir } from '../src/index.ts';
import { assertCleanFailure, fedit, startFedit } from '../../test/fixtures/fedit-cli.ts';
import { throwawayCertificate } from '../../test/fixtures/tls.ts';
import { initTestFederation, tempDir, withinLimit } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

/** `fedit coordinator start ...args`, its output collected, killed at teardown if still running. */
function startCoordinatorProcess(t: ExecutionContext, ...args: string[]) {
  const child = startFedit('coordinator', 'start', ...args);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const url = withinLimit(
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const m = /listening on (\S+)/.exec(stdout);
        if (m) resolve(m[1]);
      };
      child.stdout.on('data', check);
      void exited.then(() => reject(new Error(`exited before listening:\n${stdout}\n${stderr}`)));
    }),
    () => `"listening on" from the coordinator; stdout:\n${stdout}\nstderr:\n${stderr}`,
  );
  return { child, url, exited, output: () => ({ stdout, stderr }) };
}

test('--port 0 prints the real port; SIGTERM with a half-sent request and a participant online exits within the grace period and frees the folder', async (t) => {
  const root = await initTestFederation(t);
  const { identity, config } = openFederationDir(root);
  const coordinator = startCoordinatorProcess(t, root, '--port', '0', '--grace', '1');
  const url = await coordinator.url;
  const { port } = new URL(url);
  t.regex(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.not(port, '0');
  t.is((await fetch(`${url}/healthz`)).status, 200);

  const target = { url, federation: config.id, coordinator: publicIdentity(identity), config };
  const peer = await (
    await Peer.connect(target)
  ).join(parseInvite(createInvite(root, { url })).token, 'online');
  t.teardown(() => peer.close());
  const stalled = connect(Number(port), '127.0.0.1');
  t.teardown(() => stalled.destroy());
  await new Promise<void>((resolve) => stalled.once('connect', resolve));
  // Half an HTTP request: its headers never end (today's coordinator waited on it for minutes).
  stalled.write('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n');

  const signalled = Date.now();
  coordinator.child.kill('SIGTERM');
  const code = await withinLimit(coordinator.exited, () => 'the coordinator to exit after SIGTERM', 10_000);
  const took = Date.now() - signalled;
  t.is(code, 0, JSON.stringify(coordinator.output()));
  t.true(took < 1_000 + 4_000, `exited ${took} ms after SIGTERM (grace 1 s)`);
  t.regex(coordinator.output().stdout, /SIGTERM: stopping/);
  t.is(await peer.disconnected, 'io server disconnect', 'the participant was told');

  const revoked = await fedit('coordinator', 'revoke', root, peer.id, '--reason', 'left');
  t.is(revoked.code, 0, revoked.stderr);
  t.regex(revoked.stdout, new RegExp(`revoked ${peer.id}`));
});

test('--tls-cert/--tls-key serve HTTPS that a client trusting the certificate reaches; a key that does not fit is named', async (t) => {
  const dir = tempDir(t);
  const tls = throwawayCertificate(dir);
  if (!tls) return t.pass('openssl is not installed: skipped');
  const root = await initTestFederation(t);
  const coordinator = startCoordinatorProcess(
    t,
    root,
    '--port',
    '0',
    '--tls-cert',
    tls.cert,
    '--tls-key',
    tls.key,
  );
  const url = await coordinator.url;
  t.regex(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const ca = readFileSync(tls.cert);
  const status = await new Promise<number>((resolve, reject) =>
    httpsGet(`${url}/healthz`, { ca }, (res) => resolve(res.statusCode!)).on('error', reject),
  );
  t.is(status, 200);
  const untrusted = await fetch(`${url}/healthz`).then(
    () => 'answered',
    (err: Error) => String((err.cause as Error | undefined)?.message ?? err.message),
  );
  t.regex(untrusted, /self[- ]signed/i, 'a client without the certificate refuses it');
  coordinator.child.kill('SIGTERM');
  t.is(await coordinator.exited, 0);

  const otherKey = join(dir, 'other-key.pem');
  writeFileSync(otherKey, execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519']));
  const misfit = await fedit(
    'coordinator',
    'start',
    root,
    '--port',
    '0',
    '--tls-cert',
    tls.cert,
    '--tls-key',
    otherKey,
  );
  assertCleanFailure(t, misfit, /--tls-key .* does not fit/);
  const alone = await fedit('coordinator', 'start', root, '--port', '0', '--tls-cert', tls.cert);
  assertCleanFailure(t, alone, /--tls-cert and --tls-key go together/, alone.code);
});

test('several folders: one port, each federation printed at /<id>; the same folder twice is refused', async (t) => {
  const roots = [await initTestFederation(t), await initTestFederation(t)];
  const ids = roots.map((r) => openFederationDir(r).config.id);
  const coordinator = startCoordinatorProcess(t, ...roots, '--port', '0');
  const first = await coordinator.url;
  const base = first.slice(0, first.lastIndexOf('/'));
  t.is(first, `${base}/${ids[0]}`);
  await withinLimit(
    (async () => {
      while (!coordinator.output().stdout.includes(`[${ids[1]}] listening on ${base}/${ids[1]}`))
        await new Promise((r) => setTimeout(r, 50));
    })(),
    () => `the second federation's line; stdout:\n${coordinator.output().stdout}`,
  );
  t.regex(coordinator.output().stdout, new RegExp(`\\[${ids[0]}\\] listening on ${base}/${ids[0]}`));
  const ready = (await (await fetch(`${base}/readyz`)).json()) as { federations: Record<string, string> };
  t.deepEqual(Object.keys(ready.federations).sort(), [...ids].sort());
  coordinator.child.kill('SIGTERM');
  t.is(await coordinator.exited, 0);

  const twice = await fedit('coordinator', 'start', roots[0], roots[0], '--port', '0');
  assertCleanFailure(
    t,
    twice,
    /are both federation ".+": one process serves each federation once/,
    twice.code,
  );
  t.is(twice.code, 2, 'a usage error');
});
