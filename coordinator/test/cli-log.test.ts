// `fedit coordinator start --log-format json` as an operator runs it (a child process): every
// stdout line is one JSON object with time, level, federation and event, participants carry their
// id and display name, and SIGTERM is logged before the process exits.

import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseInvite, publicIdentity } from '@fedit/shared';
import { createInvite, openFederationDir } from '../src/index.ts';
import { freePort, repoRoot } from './helpers/cli.ts';
import { initInProcess, FAST_SETTINGS, tempDir, withinLimit } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

test('coordinator start --log-format json writes one JSON object a line, naming participants', async (t) => {
  const root = join(tempDir(t), 'federation');
  await initInProcess(root, FAST_SETTINGS);
  const child = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      'client-app/src/cli/fedit.ts',
      'coordinator',
      'start',
      root,
      '--port',
      String(await freePort()),
      '--log-format',
      'json',
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    waiters.splice(0).forEach((f) => f());
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((r) =>
    child.once('close', (code) => {
      r(code);
      waiters.splice(0).forEach((f) => f());
    }),
  );
  const lines = () =>
    stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const event = (name: string) =>
    withinLimit(
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const check = () => {
          const found = lines().find((l) => l.event === name);
          if (found) resolve(found);
          else if (child.exitCode !== null) reject(new Error(`exited before ${name}: ${stdout}\n${stderr}`));
          else waiters.push(check);
        };
        check();
      }),
      () => `event ${name}; stdout:\n${stdout}\nstderr:\n${stderr}`,
    );

  const listening = await event('listening');
  const { config, identity } = openFederationDir(root);
  t.like(listening, { level: 'info', federation: config.id });
  const url = String(listening.url);
  const target = { url, federation: config.id, coordinator: publicIdentity(identity), config };
  const token = parseInvite(createInvite(root, { url })).token;
  const peer = await (await Peer.connect(target)).join(token, 'Ward 7 laptop');
  t.teardown(() => peer.close());
  const ready = await event('readiness');
  t.like(ready, { participant: peer.id, displayName: 'Ward 7 laptop', ready: true });
  t.is(ready.msg, `Ward 7 laptop (${peer.id.slice(0, 8)}) ready`);

  child.kill('SIGTERM');
  t.is(await exited, 0);
  const all = lines();
  t.like(
    all.find((l) => l.event === 'stopping'),
    { level: 'info', msg: 'SIGTERM: stopping (at most 10 s for open connections)' },
  );
  for (const line of all) {
    t.regex(String(line.time), ISO);
    t.true(['info', 'warn', 'error'].includes(String(line.level)));
    t.is(line.federation, config.id);
  }
});
