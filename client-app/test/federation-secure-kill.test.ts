// Dropouts in secure rounds, with real participants: five `fedit client run` processes (tiny
// model) in a secure federation (complete graph, thresholdFraction 0.7: t = 4 of 5), killed with
// SIGKILL at each phase as the coordinator's events show it, and started again at once (a
// restarted participant has lost its round secrets: its next start says in its log that it dropped
// out of that round, and it takes part again from the next one):
//
//   round 1  one killed after its keys were accepted        -> 4 of 5 share, 4 >= t: closes
//   round 2  one killed after its shares were accepted      -> 4 masked inputs: closes at the deadline
//   round 3  one killed after its masked input was counted  -> 4 reveals >= t: closes (its input counted)
//   round 4  two killed after their shares were accepted    -> 3 masked inputs < t: aborted, nothing unmasked
//
// Every closed round is recomputed by the audit.

import test, { type ExecutionContext } from 'ava';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { federationPaths, parseRoundRecord, type RoundRecord } from '@fedit/shared';
import {
  createInvite,
  startCoordinator,
  type CoordinatorEvent,
  type FederationSettings,
} from '@fedit/coordinator';
import { EventRecorder, FACTS, writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { fedit, startFedit } from '../../test/fixtures/fedit-cli.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import { joinFederation } from '../src/core/federation/index.ts';

const NAMES = ['ada', 'bo', 'cy', 'di', 'ed'];

const SETTINGS = {
  name: 'secure kill test',
  lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'] },
  training: {
    localSteps: 2,
    batchSize: 2,
    lr: 1e-2,
    cutoffLen: 48,
    template: 'chat',
    trainOnInputs: false,
    scaffold: false,
  },
  rounds: 4,
  participantsPerRound: { fraction: 1, minimum: 5 },
  minUpdates: 2,
  roundDeadlineSeconds: 12,
  aggregation: { rule: 'fedit', weightCap: 4, clipping: undefined },
  secureAggregation: {
    graph: 'complete',
    thresholdFraction: 0.7,
    clipRange: 1,
    scaleBits: 16,
    maxParticipants: 8,
    phaseSeconds: 3,
  },
} as unknown as FederationSettings;

class Child {
  proc: ChildProcessWithoutNullStreams;
  stderr = '';
  constructor(readonly args: string[]) {
    this.proc = this.#spawn();
  }
  #spawn() {
    const proc = startFedit(...this.args);
    proc.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    proc.stdout.on('data', () => {});
    return proc;
  }
  /** kill -9, then the same command again (the same home: a restart). */
  restart(): void {
    this.proc.kill('SIGKILL');
    this.stderr += '\n--- restarted ---\n';
    this.proc = this.#spawn();
  }
}

async function records(fedDir: string): Promise<RoundRecord[]> {
  const text = await readFile(federationPaths(fedDir).log, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => parseRoundRecord(JSON.parse(l), `line ${i + 1}`));
}

async function setUp(t: ExecutionContext, onEvent: (e: CoordinatorEvent) => void) {
  const work = await mkdtemp(join(tmpdir(), 'fedit-secure-kill-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(work, 'model'), 0);
  const fedDir = join(work, 'federation');
  await initFederationFromModel(fedDir, { modelDir, modelName: 'tiny-test', seed: 1, settings: SETTINGS });
  const recorder = new EventRecorder<CoordinatorEvent>();
  const coordinator = await startCoordinator({
    dir: fedDir,
    host: '127.0.0.1',
    port: 0,
    onEvent: (e) => {
      onEvent(e);
      recorder.record(e);
    },
  });
  t.teardown(() => coordinator.close());
  const children = new Map<string, Child>();
  t.teardown(() => [...children.values()].forEach((c) => c.proc.kill('SIGKILL')));
  for (const [i, name] of NAMES.entries()) {
    const home = join(work, name);
    const data = join(work, `${name}.jsonl`);
    const rows = [0, 1, 2]
      .map((k) => FACTS[(i * 2 + k) % FACTS.length])
      .map(([q, a]) =>
        JSON.stringify({
          messages: [
            { role: 'user', content: `The ${q}?` },
            { role: 'assistant', content: a },
          ],
        }),
      );
    await writeFile(data, rows.join('\n') + '\n');
    const joined = await joinFederation(createInvite(fedDir, { url: coordinator.url }), {
      home,
      displayName: name,
    });
    const args = ['client', 'run', '--model', modelDir, '--data', data, '--home', home, '--threads', '1'];
    children.set(joined!.membership.participantId, new Child(args));
  }
  return { fedDir, recorder, children };
}

test('secure rounds survive SIGKILLed participants at every phase while t remain, and abort visibly below t', async (t) => {
  t.timeout(150_000);
  const started = Date.now();
  const killed = new Map<number, string[]>();
  let children = new Map<string, Child>();
  const kill = (round: number, participant: string, restart = true) => {
    const child = children.get(participant)!;
    killed.set(round, [...(killed.get(round) ?? []), participant]);
    if (restart) child.restart();
    else child.proc.kill('SIGKILL');
  };
  // The kills, synchronous with the event: the participant is gone before its next message.
  const onEvent = (e: CoordinatorEvent) => {
    if (!('round' in e)) return;
    const already = killed.get(e.round)?.length ?? 0;
    const phase = e.type === 'secagg-received' ? e.phase : e.type;
    if (e.round === 1 && phase === 'advertise' && already === 0)
      kill(1, (e as { participant: string }).participant);
    if (e.round === 2 && phase === 'shares' && already === 0)
      kill(2, (e as { participant: string }).participant);
    if (e.round === 3 && phase === 'update-counted' && already === 0)
      kill(3, (e as { participant: string }).participant);
    if (e.round === 4 && phase === 'shares' && already < 2)
      kill(4, (e as { participant: string }).participant, false);
  };
  const set = await setUp(t, onEvent);
  children = set.children;
  const { fedDir, recorder } = set;
  await recorder.next((e) => e.type === 'round-aborted' && e.round === 4);
  t.log(`4 secure rounds with 5 participant processes: ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const log = await records(fedDir);
  const of = <K extends RoundRecord['kind']>(kind: K, round: number) =>
    log.find((r) => r.kind === kind && r.round === round) as Extract<RoundRecord, { kind: K }> | undefined;
  const survivors = (round: number) =>
    of('round-closed', round)!.body.secure!.maskedInputs.map((m) => m.participant);

  // Round 1: the killed participant advertised (in U1) but shared nothing; the 4 others close it.
  t.is(of('secagg-keys', 1)!.body.advertised.length, 5);
  t.is(of('secagg-keys', 1)!.body.threshold, 4);
  t.false(of('secagg-shares', 1)!.body.shared.some((s) => s.participant === killed.get(1)![0]));
  t.is(survivors(1).length, 4);
  // Round 2: killed after sharing: in U2, dropped at unmasking, its pair masks recovered.
  t.true(of('secagg-shares', 2)!.body.shared.some((s) => s.participant === killed.get(2)![0]));
  t.deepEqual(of('secagg-unmask', 2)!.body.dropped, killed.get(2));
  t.is(survivors(2).length, 4);
  // Round 3: killed after its masked input counted: it is summed, the 4 others' reveals suffice.
  t.true(survivors(3).includes(killed.get(3)![0]));
  t.is(of('round-closed', 3)!.body.secure!.reveals.length, 4);
  // Round 4: two killed after sharing: 3 < t = 4 masked inputs: aborted, no unmask record.
  t.is(killed.get(4)!.length, 2);
  t.is(of('secagg-unmask', 4), undefined, 'nothing was asked to be revealed');
  t.regex(of('round-aborted', 4)!.body.reason, /secure aggregation.*nothing was unmasked/s);

  // The participant restarted mid-round 2 says it dropped out of that round, then came back.
  const restarted = children.get(killed.get(2)![0])!.stderr.split('--- restarted ---')[1];
  t.regex(
    restarted,
    /secure round 2: this participant restarted during the round; .*dropped out of this round/,
  );

  const audit = await fedit('audit', fedDir);
  t.is(audit.code, 0, audit.stdout + audit.stderr);
});
