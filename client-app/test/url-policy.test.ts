// Which coordinators a participant connects to (core/federation/url-policy.ts): plain http:// only
// to this computer unless allowed, named in a clear refusal before anything is sent; https:// to a
// coordinator with a self-signed certificate when `--ca` names it, end to end: `fedit client join`
// and `fedit client run` complete a round over TLS.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInvite, startCoordinator } from '@fedit/coordinator';
import { createInviteToken, formatInvite, generateIdentity, publicIdentity } from '@fedit/shared';
import { FederationError } from '../src/core/federation/errors.ts';
import { checkCoordinatorUrl, isLoopbackHost } from '../src/core/federation/url-policy.ts';
import { assertCleanFailure, fedit } from '../../test/fixtures/fedit-cli.ts';
import { FACTS } from '../../test/fixtures/tiny-federation.ts';
import { throwawayCertificate } from '../../test/fixtures/tls.ts';
import { tinyLoopbackFederation, writeFactsChat } from './fixtures/loopback.ts';

test('loopback is localhost, 127.0.0.0/8 and ::1; nothing else', (t) => {
  for (const host of ['localhost', 'LOCALHOST', 'app.localhost', '127.0.0.1', '127.3.2.1', '[::1]', '::1'])
    t.true(isLoopbackHost(host), host);
  for (const host of [
    '10.0.0.5',
    '192.168.1.2',
    '128.0.0.1',
    'localhost.example.org',
    '[::2]',
    'example.org',
    '0.0.0.0',
  ])
    t.false(isLoopbackHost(host), host);
});

test('plain http:// to another computer is refused, naming the way out; loopback, https and an allowed one pass', (t) => {
  const refuse = { allowInsecureHttp: false };
  const error = t.throws(() => checkCoordinatorUrl('http://10.0.0.5:7150', refuse), {
    instanceOf: FederationError,
  });
  t.is(error.code, 'FEDERATION_INSECURE_URL');
  t.regex(error.message, /refusing plain http:\/\/ to 10\.0\.0\.5:7150/);
  t.regex(error.message, /https:\/\/ invite/);
  t.regex(error.message, /--allow-insecure-http/);
  t.notThrows(() => checkCoordinatorUrl('http://127.0.0.1:7150', refuse));
  t.notThrows(() => checkCoordinatorUrl('http://localhost:7150/study', refuse));
  t.notThrows(() => checkCoordinatorUrl('https://10.0.0.5:7150', refuse));
  t.notThrows(() => checkCoordinatorUrl('http://10.0.0.5:7150', { allowInsecureHttp: true }));
});

test('fedit client join refuses an http:// invite to another computer before connecting', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'fedit-url-policy-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const invite = formatInvite({
    url: 'http://192.0.2.10:7150', // TEST-NET-1: nothing answers there, and nothing is tried
    federation: 'remote-study',
    coordinator: publicIdentity(generateIdentity()),
    token: createInviteToken(),
  });
  const started = Date.now();
  const r = await fedit('client', 'join', invite, '--yes', '--home', home);
  assertCleanFailure(t, r, /refusing plain http:\/\/ to 192\.0\.2\.10:7150: .*--allow-insecure-http/);
  t.true(Date.now() - started < 15_000, 'refused at once, not after a connection timeout');
});

test('over https with --ca: a participant joins and trains a round with a coordinator whose certificate is self-signed', async (t) => {
  const fed = await tinyLoopbackFederation(t, {
    rounds: 1,
    participantsPerRound: { fraction: 1, minimum: 1 },
    minUpdates: 1,
  });
  const tls = throwawayCertificate(fed.dir);
  if (!tls) return t.pass('openssl is not installed: skipped');
  await fed.coordinator.close(); // the fixture's plain one; the same folder, now over TLS
  const coordinator = await startCoordinator({ dir: fed.fedDir, host: '127.0.0.1', port: 0, tls });
  t.teardown(() => coordinator.close());
  t.regex(coordinator.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const home = join(fed.dir, 'home');
  const invite = createInvite(fed.fedDir, { url: coordinator.url });
  const joined = await fedit('client', 'join', invite, '--yes', '--json', '--ca', tls.cert, '--home', home);
  t.is(joined.code, 0, joined.stderr);
  t.like(JSON.parse(joined.stdout), { url: coordinator.url, enrolled: true });

  const data = await writeFactsChat(join(fed.dir, 'data.jsonl'), FACTS.slice(0, 4));
  const run = await fedit(
    ...['client', 'run', '--model', fed.modelDir, '--data', data, '--home', home],
    ...['--threads', '1', '--ca', tls.cert],
  );
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /\bround 1: aggregated from 1 update/); // after the line's time and level

  const missingCa = await fedit(
    'client',
    'join',
    invite,
    '--yes',
    '--ca',
    join(fed.dir, 'nope.pem'),
    '--home',
    home,
  );
  assertCleanFailure(t, missingCa, /cannot read --ca .*nope\.pem/);
});
