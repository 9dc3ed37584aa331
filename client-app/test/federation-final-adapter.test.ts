// The end of a federation as its people live it, with the real `fedit coordinator start` as a
// child process: every participant ends holding the federation's final adapter, whether or not it
// trained in the last round, and one who was away when the federation finished gets it later with
// `fedit client run` from a coordinator started again on the finished federation.

import test, { type ExecutionContext } from 'ava';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { federationPaths, hashTensors, parseSafetensors, readRoundLog } from '@fedit/shared';
import { createInvite } from '@fedit/coordinator';
import { FACTS, writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { fedit, startFedit } from '../../test/fixtures/fedit-cli.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import { Participant, joinFederation, type ParticipantResult } from '../src/core/federation/index.ts';
import { writeFactsChat } from './fixtures/loopback.ts';

/** Fails a wait that should have ended long ago (the rounds train a tiny model a few steps). */
const WAIT_LIMIT_MS = 120_000;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** `fedit coordinator start` as an operator runs it; stopped (SIGKILL) at teardown if still running. */
class CoordinatorCommand {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  readonly exited: Promise<number | null>;

  constructor(t: ExecutionContext, fedDir: string, port: number) {
    this.child = startFedit('coordinator', 'start', fedDir, '--port', String(port));
    this.child.stdout.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    this.child.stderr.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    t.teardown(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    });
  }

  /** The first output line matching `pattern`, already printed or to come. */
  async line(pattern: RegExp): Promise<string> {
    for (const started = Date.now(); Date.now() - started < WAIT_LIMIT_MS;) {
      const found = this.stdout.split('\n').find((l) => pattern.test(l));
      if (found !== undefined) return found;
      if (this.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no line matching ${pattern} from the coordinator; it printed:\n${this.stdout}`);
  }

  /** Ctrl-C as the operator presses it: the process closes and exits 0. */
  async stop(): Promise<number | null> {
    this.child.kill('SIGINT');
    return this.exited;
  }
}

async function assertHoldsFinalAdapter(
  t: ExecutionContext,
  path: string,
  hash: string,
  who: string,
): Promise<void> {
  const { tensors } = parseSafetensors(new Uint8Array(await readFile(path)), path);
  t.is(hashTensors(tensors), hash, `${who} holds the final adapter, intact, at ${path}`);
}

test('every participant ends holding the final adapter, the one left out of the last round too; one away at the end gets it later from a restarted `fedit coordinator start`', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-final-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(dir, 'model'));
  const fedDir = join(dir, 'federation');
  // One participant per round, each round closing on its one update.
  await initFederationFromModel(fedDir, {
    modelDir,
    modelName: 'tiny-test',
    seed: 1,
    settings: {
      name: 'final adapter test',
      rounds: 2,
      // No over-selection: one is selected per round, so one is left out of the last.
      participantsPerRound: { fraction: 0.5, minimum: 1, overSelection: 1 },
      minUpdates: 1,
      roundDeadlineSeconds: 120,
      lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] },
      training: {
        localSteps: 2,
        batchSize: 2,
        lr: 1e-2,
        cutoffLen: 64,
        template: 'chat',
        trainOnInputs: false,
      },
    },
  });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const coordinator = new CoordinatorCommand(t, fedDir, port);
  await coordinator.line(/listening on/);

  const home = (name: string) => join(dir, name);
  const data = await writeFactsChat(join(dir, 'facts.jsonl'), FACTS);
  const run = (name: string) =>
    new Participant().start({
      modelDir,
      dataFiles: [data],
      home: home(name),
      threads: 1,
      reconnectionDelayMax: 500,
    });
  // Alice joins and runs first, so round 1 opens with her alone (joining alone is not being ready);
  // Bob joins and runs while it runs.
  await joinFederation(createInvite(fedDir, { url }), { home: home('alice'), displayName: 'Alice' });
  await new Promise((r) => setTimeout(r, 300));
  t.notRegex(coordinator.stdout, /round 1 open/, 'a participant that only joined opens no round');
  const runs = [run('alice')];
  await coordinator.line(/round 1 open: 1 selected/);
  await joinFederation(createInvite(fedDir, { url }), { home: home('bob'), displayName: 'Bob' });
  runs.push(run('bob'));
  // Carol joins while round 2 runs (so she is in no round), and is away when the federation ends.
  await coordinator.line(/round 2 open: 1 selected/);
  await joinFederation(createInvite(fedDir, { url }), { home: home('carol'), displayName: 'Carol' });
  const results: ParticipantResult[] = await Promise.all(runs);

  const { records } = await readRoundLog(federationPaths(fedDir).log);
  const idOf = new Map(
    records.flatMap((r) => (r.kind === 'enrol' ? [[r.body.displayName, r.body.participant]] : [])),
  );
  const opened = records.flatMap((r) => (r.kind === 'round-open' ? [r.body.selection.selected] : []));
  t.deepEqual(opened[0], [idOf.get('Alice')], 'round 1 selected Alice alone');
  t.is(opened[1].length, 1);
  const leftOut =
    opened[1][0] === idOf.get('Alice') ? 'Bob (never selected)' : 'Alice (selected in round 1 only)';
  t.log(`left out of round 2: ${leftOut}`);
  const closed = records.filter((r) => r.kind === 'round-closed').at(-1);
  if (closed?.kind !== 'round-closed' || closed.round !== 2) return t.fail('round 2 was aggregated');
  const final = closed.body.globalAdapterOut;

  for (const [i, result] of results.entries()) {
    const who = ['Alice', 'Bob'][i];
    t.is(result.reason, 'finished', who);
    t.is(result.finalAdapter?.hash as string | undefined, final, `${who} was told the final adapter`);
    t.is(result.finalAdapter?.rounds, 2);
    await assertHoldsFinalAdapter(t, result.finalAdapter!.path, final, who);
  }
  // The coordinator did not go away: it says it serves the final adapter, and a Ctrl-C stops it.
  await coordinator.line(new RegExp(`all rounds done \\(2\\): serving the final adapter ${final}`));
  t.is(await coordinator.stop(), 0, coordinator.stdout);

  // Later, the operator starts it again on the finished federation, and Carol comes back.
  const again = new CoordinatorCommand(t, fedDir, port);
  await again.line(
    new RegExp(
      `the federation finished earlier \\(2 rounds\\): serving its results read-only, final adapter ${final}`,
    ),
  );
  const carol = await fedit(
    'client',
    'run',
    '--model',
    modelDir,
    '--data',
    data,
    '--home',
    home('carol'),
    '--threads',
    '1',
  );
  t.is(carol.code, 0, carol.stderr);
  const saved = join(home('carol'), 'adapters', `${final.slice('sha256:'.length)}.safetensors`);
  t.regex(
    carol.stderr,
    new RegExp(
      `the federation has ended: your adapter is saved at ${saved.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
    ),
  );
  t.notRegex(carol.stderr, /\[training\]/, 'nothing trains');
  t.notRegex(carol.stderr, /loading the base model/, 'the model is not even loaded');
  await assertHoldsFinalAdapter(t, saved, final, 'Carol');
  // She was away when round 2 closed, yet she exports it: 'federation:finished' named its round.
  const exported = await fedit('client', 'export', '--home', home('carol'), '--out', join(dir, 'carol-out'));
  t.is(exported.code, 0, exported.stderr);
  t.true((await readFile(join(dir, 'carol-out', 'README.md'), 'utf8')).includes('after round 2'));
  t.notRegex(again.stdout, /round \d+ open/, 'no round opens on a finished federation');
  t.is(await again.stop(), 0, again.stdout);
});
