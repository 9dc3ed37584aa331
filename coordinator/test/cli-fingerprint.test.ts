// The operator's fingerprint: `coordinator init` and `coordinator invite` print the fingerprint of
// the coordinator key the invites carry, the one `fedit client join` and the app show participants,
// so the two can be compared over another channel.

import test from 'ava';
import { join } from 'node:path';
import { fingerprint, parseInvite } from '@fedit/shared';
import { startCoordinator } from '../src/index.ts';
import { fedit } from './helpers/cli.ts';
import { tempDir, tinyModel } from './helpers/federation.ts';

test('init and invite print the fingerprint of the key the invites carry, in text and JSON', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const init = await fedit('coordinator', 'init', dir, '--model', await tinyModel());
  t.is(init.code, 0, init.stderr);
  const line = /^ {2}fingerprint ([0-9a-f]{32}) {2}\(participants see it when they join/m;
  const printed = line.exec(init.stdout)?.[1] ?? '';
  t.regex(printed, /^[0-9a-f]{32}$/, init.stdout);

  const invite = await fedit('coordinator', 'invite', dir, '--url', 'http://127.0.0.1:7150');
  t.is(invite.code, 0, invite.stderr);
  const lines = invite.stdout.trim().split('\n');
  t.is(lines.length, 1, 'stdout holds the invite alone');
  t.is(fingerprint(parseInvite(lines[0]).coordinator), printed);
  t.is(
    invite.stderr,
    `fingerprint ${printed}  (participants see it when they join: give it to them another way, so they can compare)\n`,
  );

  const json = await fedit(
    'coordinator',
    'invite',
    dir,
    '--url',
    'http://127.0.0.1:7150',
    '-n',
    '2',
    '--json',
  );
  t.is(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as { invites: string[]; fingerprint: string };
  t.is(parsed.fingerprint, printed);
  t.is(parsed.invites.length, 2);
  for (const text of parsed.invites) t.is(fingerprint(parseInvite(text).coordinator), printed);

  const second = join(tempDir(t), 'federation');
  const initJson = await fedit('coordinator', 'init', second, '--model', await tinyModel(), '--json');
  t.is(initJson.code, 0, initJson.stderr);
  const created = JSON.parse(initJson.stdout) as { federation: string; fingerprint: string; dir: string };
  t.regex(created.federation, /^fed-/);
  t.is(created.dir, second);
  t.regex(created.fingerprint, /^[0-9a-f]{32}$/);
  t.not(created.fingerprint, printed, 'each federation has its own keys');
});

test('`fedit client join` shows the participant the fingerprint `coordinator init` printed', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const init = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), '--json');
  t.is(init.code, 0, init.stderr);
  const { fingerprint: printed } = JSON.parse(init.stdout) as { fingerprint: string };
  const coordinator = await startCoordinator({ dir, host: '127.0.0.1', port: 0 });
  t.teardown(() => coordinator.close());
  const invite = (await fedit('coordinator', 'invite', dir, '--url', coordinator.url)).stdout.trim();
  const home = join(tempDir(t), 'home');
  const joined = await fedit('client', 'join', invite, '--yes', '--name', 'Ann', '--home', home);
  t.is(joined.code, 0, joined.stderr);
  const shown = /^ {2}fingerprint {5}([0-9a-f]{32}) {2}\(compare it with the one the operator gave you\)$/m;
  t.is(shown.exec(joined.stdout)?.[1], printed, joined.stdout);
});
