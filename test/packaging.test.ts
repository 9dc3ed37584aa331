// The container image and the systemd unit (packaging/), checked as far as this machine allows:
// docker has no daemon here, so the Dockerfile is parsed and every claim it makes about the
// repository is checked (sources it copies exist, the command it runs is the package's `fedit`
// bin and takes the options it passes); the unit is verified by systemd-analyze when installed.

import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fedit, repoRoot } from './fixtures/fedit-cli.ts';

interface Instruction {
  keyword: string;
  args: string;
  /** Index of the FROM stage it belongs to. */
  stage: number;
}

/** The Dockerfile's instructions: comments dropped, continuation lines joined. */
function parseDockerfile(text: string): Instruction[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) pending += line.slice(0, -1) + ' ';
    else {
      logical.push(pending + line);
      pending = '';
    }
  }
  let stage = -1;
  return logical.map((line) => {
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    if (keyword.toUpperCase() === 'FROM') stage++;
    return { keyword: keyword.toUpperCase(), args, stage };
  });
}

const dockerfile = parseDockerfile(readFileSync(join(repoRoot, 'packaging/Dockerfile'), 'utf8'));
const finalStage = Math.max(...dockerfile.map((i) => i.stage));
const inFinal = (keyword: string) =>
  dockerfile.filter((i) => i.keyword === keyword && i.stage === finalStage);
const json = (args: string) => JSON.parse(args) as string[];

test('the Dockerfile is multi-stage: installs as locked without scripts, runs from a second stage', (t) => {
  const froms = dockerfile.filter((i) => i.keyword === 'FROM');
  t.true(froms.length >= 2, 'a build stage and a runtime stage');
  t.regex(froms[0].args, / AS build$/);
  t.true(
    dockerfile.some((i) => i.stage === 0 && i.keyword === 'RUN' && /npm ci .*--ignore-scripts/.test(i.args)),
    'npm ci --ignore-scripts, as .npmrc and .ci/run install',
  );
  t.false(
    inFinal('RUN').some((i) => /npm (ci|install)/.test(i.args)),
    'the runtime stage installs nothing itself',
  );
});

test('every COPY from the build context names a path that exists in the repository', (t) => {
  const copies = dockerfile.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='));
  t.true(copies.length > 0);
  for (const copy of copies) {
    const parts = copy.args.split(/\s+/);
    for (const source of parts.slice(0, -1))
      t.true(existsSync(join(repoRoot, source)), `COPY source ${source}`);
  }
});

test('the runtime stage runs as a user other than root, with /data a volume and a health check', (t) => {
  const users = inFinal('USER');
  t.true(users.length > 0, 'a USER instruction in the runtime stage');
  t.notRegex(users.at(-1)!.args, /^(root|0)(:|$)/);
  t.deepEqual(json(inFinal('VOLUME')[0].args), ['/data']);
  const port = inFinal('EXPOSE')[0].args;
  const health = inFinal('HEALTHCHECK');
  t.is(health.length, 1);
  t.true(
    health[0].args.includes(`http://127.0.0.1:${port}/healthz`),
    'the health check asks /healthz on the exposed port',
  );
  const cmd = json(inFinal('CMD')[0].args);
  t.is(cmd[cmd.indexOf('--port') + 1], port, 'the coordinator listens on the exposed port');
  t.is(cmd[cmd.indexOf('--host') + 1], '0.0.0.0', 'reachable from outside the container');
});

test("the ENTRYPOINT is the package's fedit bin, copied into the runtime stage, and takes the CMD's options", async (t) => {
  const entrypoint = json(inFinal('ENTRYPOINT')[0].args);
  const [node, script, ...command] = entrypoint;
  t.is(node, 'node');
  t.deepEqual(command, ['coordinator', 'start', '/data']);
  // /app/client-app/bin/fedit.js is client-app's "bin": { "fedit": "./bin/fedit.js" }.
  const workdir = inFinal('WORKDIR').at(-1)!.args;
  const relative = posix.relative(workdir, script);
  const [workspace, ...rest] = relative.split('/');
  const pkg = JSON.parse(readFileSync(join(repoRoot, workspace, 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
  };
  t.is(posix.normalize(pkg.bin.fedit), rest.join('/'));
  const copied = inFinal('COPY').some((i) => {
    const target = i.args.split(/\s+/).at(-1)!;
    return i.args.startsWith('--from=build') && relative.startsWith(target);
  });
  t.true(copied, `${relative} is copied into the runtime stage`);

  const help = await fedit('coordinator', 'start', '--help');
  t.is(help.code, 0);
  for (const option of json(inFinal('CMD')[0].args).filter((a) => a.startsWith('--')))
    t.true(help.stdout.includes(option), `coordinator start takes ${option}`);
});

const systemdAnalyze = '/usr/bin/systemd-analyze';

test('the systemd unit passes systemd-analyze verify without a warning', async (t) => {
  if (!existsSync(systemdAnalyze)) {
    t.log('systemd-analyze is not installed: the unit is not verified here');
    t.pass();
    return;
  }
  const unit = readFileSync(join(repoRoot, 'packaging/fedit-coordinator.service'), 'utf8');
  t.regex(unit, /^ExecStart=\/usr\/bin\/fedit coordinator start /m);
  for (const hardening of [
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ReadWritePaths=/var/lib/fedit',
    'PrivateTmp=yes',
    'StateDirectory=fedit',
    'Restart=on-failure',
    'KillSignal=SIGTERM',
  ])
    t.regex(unit, new RegExp(`^${hardening}$`, 'm'));
  // verify checks that ExecStart's program exists: here it is this node and the repository's bin.
  const dir = mkdtempSync(join(tmpdir(), 'fedit-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'fedit-coordinator.service');
  writeFileSync(
    path,
    unit.replace(
      /^ExecStart=\/usr\/bin\/fedit /m,
      `ExecStart=${process.execPath} ${join(repoRoot, 'client-app/bin/fedit.js')} `,
    ),
  );
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve) =>
    execFile(systemdAnalyze, ['verify', path], { cwd: dir }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    ),
  );
  t.is(code, 0, output);
  t.is(output.trim(), '', 'no warnings (unknown keys and bad values are only warnings to systemd)');
});
