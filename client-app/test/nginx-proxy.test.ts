// The reverse-proxy recipe of docs/operations.md, run: its nginx block is read from the document
// (so the two cannot drift), its addresses and certificate paths replaced by the test's, and nginx
// started in front of a coordinator on loopback; a participant trusting the throwaway certificate
// joins through it and completes a round (`fedit client join` and `fedit client run`), and
// /healthz answers through it. Skipped without nginx or openssl, unless FEDIT_REQUIRE_NGINX=1.

import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createInvite } from '@fedit/coordinator';
import { fedit, repoRoot } from '../../test/fixtures/fedit-cli.ts';
import { FACTS } from '../../test/fixtures/tiny-federation.ts';
import { throwawayCertificate } from '../../test/fixtures/tls.ts';
import { tinyLoopbackFederation, writeFactsChat } from './fixtures/loopback.ts';

/** A port nothing listens on right now (the kernel's pick for port 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** The document's ```nginx block. */
function recipe(): string {
  const doc = readFileSync(join(repoRoot, 'docs/operations.md'), 'utf8');
  const blocks = [...doc.matchAll(/^```nginx\n([\s\S]*?)^```$/gm)];
  if (blocks.length !== 1) throw new Error(`docs/operations.md has ${blocks.length} nginx blocks, not 1`);
  return blocks[0][1];
}

/** `text` with `from` replaced by `to`; `from` must be there (the recipe changed otherwise). */
function replaced(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`the nginx recipe no longer has ${JSON.stringify(from)}`);
  return text.replaceAll(from, to);
}

function nginxMissing(): boolean {
  return spawnSync('nginx', ['-v']).error !== undefined;
}

test('the nginx recipe of docs/operations.md: a participant joins and completes a round through it over TLS', async (t) => {
  if (nginxMissing()) {
    if (process.env.FEDIT_REQUIRE_NGINX === '1')
      return t.fail('nginx is not installed (FEDIT_REQUIRE_NGINX=1)');
    return t.pass('nginx is not installed: skipped');
  }
  const fed = await tinyLoopbackFederation(t, {
    rounds: 1,
    participantsPerRound: { fraction: 1, minimum: 1 },
    minUpdates: 1,
  });
  const tls = throwawayCertificate(fed.dir);
  if (!tls) return t.pass('openssl is not installed: skipped');
  const proxyPort = await freePort();
  const backend = new URL(fed.coordinator.url);

  let block = recipe();
  block = replaced(block, 'listen 443 ssl;', `listen 127.0.0.1:${proxyPort} ssl;`);
  block = replaced(block, '/etc/ssl/fedit/fullchain.pem', tls.cert);
  block = replaced(block, '/etc/ssl/fedit/privkey.pem', tls.key);
  block = replaced(
    block,
    'proxy_pass http://127.0.0.1:7150;',
    `proxy_pass http://127.0.0.1:${backend.port};`,
  );
  const prefix = join(fed.dir, 'nginx');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  // What a distribution's nginx.conf provides around conf.d, in the test's folder; as root, the
  // workers stay root so that they can read the test's private folder.
  const conf = [
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    `pid ${join(prefix, 'nginx.pid')};`,
    `error_log ${join(prefix, 'logs/error.log')} warn;`,
    'worker_processes 1;',
    'events { worker_connections 64; }',
    'http {',
    `  access_log ${join(prefix, 'logs/access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
      (d) => `  ${d}_temp_path ${join(prefix, d)};`,
    ),
    block,
    '}',
  ].join('\n');
  const confFile = join(prefix, 'nginx.conf');
  writeFileSync(confFile, conf);
  const nginx = spawn('nginx', ['-p', prefix, '-c', confFile, '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let nginxOutput = '';
  nginx.stderr.setEncoding('utf8').on('data', (s: string) => (nginxOutput += s));
  t.teardown(() => void nginx.kill('SIGTERM'));

  const url = `https://127.0.0.1:${proxyPort}`;
  const ca = readFileSync(tls.cert);
  const health = () =>
    new Promise<number>((resolve, reject) =>
      httpsGet(`${url}/healthz`, { ca }, (res) => resolve(res.statusCode!)).on('error', reject),
    );
  // nginx starts in milliseconds; 20 s is a broken setup, reported with nginx's own words.
  const givingUp = Date.now() + 20_000;
  while ((await health().catch(() => 0)) !== 200) {
    if (nginx.exitCode !== null || Date.now() > givingUp)
      return t.fail(`nginx did not answer /healthz: ${nginxOutput}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const home = join(fed.dir, 'home');
  const invite = createInvite(fed.fedDir, { url });
  const joined = await fedit('client', 'join', invite, '--yes', '--json', '--ca', tls.cert, '--home', home);
  t.is(joined.code, 0, joined.stderr);
  t.like(JSON.parse(joined.stdout), { url, enrolled: true });
  const data = await writeFactsChat(join(fed.dir, 'data.jsonl'), FACTS.slice(0, 4));
  const run = await fedit(
    ...['client', 'run', '--model', fed.modelDir, '--data', data, '--home', home],
    ...['--threads', '1', '--ca', tls.cert],
  );
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /\bround 1: aggregated from 1 update/); // after the line's time and level
  const access = readFileSync(join(prefix, 'logs/access.log'), 'utf8');
  t.regex(
    access,
    /GET \/socket\.io\/\?EIO=4&transport=websocket HTTP\/1\.1" 101/,
    'the WebSocket went through nginx',
  );
});
