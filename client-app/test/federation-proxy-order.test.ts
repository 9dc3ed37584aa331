// A relay between participant and coordinator that loses or reorders messages (fixtures/
// rewriting-proxy.ts), every record still the coordinator's own: the participant never hangs and
// never acts on stale state. One participant, one federation of three aggregated rounds, three runs:
//
//   run 1: round 1's announcement is dropped (round 1 aborts at its deadline, the participant takes
//          part in round 2); round 2's result is dropped (round 3 is announced on round 2's
//          output); round 2's announcement is delivered again after round 3's: refused as old.
//   run 2: the result of the round it uploads in is held back until the next round's announcement
//          has gone through, then delivered: refused as old; the round's result never acted on.
//   run 3: honest; the federation ends, the participant holding its final adapter.
//
// Round timing is read from the signed records (a round's deadline, the time its end was written),
// never from the test's clock. Deadlines of 6 s: a round missed waits for its deadline.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInvite } from '@fedit/coordinator';
import type { RoundRecord } from '@fedit/shared';
import { FACTS } from '../../test/fixtures/tiny-federation.ts';
import { FederationError, joinFederation, Participant } from '../src/core/federation/index.ts';
import { tinyLoopbackFederation, writeFactsChat } from './fixtures/loopback.ts';
import { DROP, rewritingProxy, type Rewrite } from './fixtures/rewriting-proxy.ts';

type Body = Record<string, unknown> & { deadline: string; globalAdapter: string; globalAdapterOut: string };
type Signed = { record: RoundRecord & { body: Body } };

const HONEST: Rewrite = (_event, payload) => payload;
const roundOf = (payload: unknown) => (payload as Partial<Signed>).record?.round;

test('a relay that drops or reorders round messages: no hang, no stale state, the federation ends right', async (t) => {
  const fed = await tinyLoopbackFederation(t, {
    rounds: 3,
    participantsPerRound: { fraction: 1, minimum: 1 },
    minUpdates: 1,
    roundDeadlineSeconds: 6,
  });
  let rewrite: Rewrite = HONEST;
  const proxy = await rewritingProxy(fed.coordinator.url, (...args) => rewrite(...args));
  t.teardown(() => proxy.close());
  const home = join(fed.dir, 'carol');
  const data = await writeFactsChat(join(fed.dir, 'carol.jsonl'), FACTS);
  const invite = createInvite(fed.fedDir, { url: proxy.url });
  const joined = await joinFederation(invite, { home, displayName: 'carol' });
  const { federation, participantId } = joined!.membership;
  const carol = new Participant();
  const run = () =>
    carol.start({ modelDir: fed.modelDir, dataFiles: [data], home, threads: 1, reconnectionDelayMax: 500 });
  /** The records the coordinator sent as `event` for `round`, as sent (before the relay's changes). */
  const sent = (event: string, round: number) =>
    proxy.seen
      .filter((s) => s.event === event && roundOf(s.payload) === round)
      .map((s) => (s.payload as Signed).record);
  const newestSeen = async () =>
    (JSON.parse(await readFile(join(home, 'announced', `${federation}.json`), 'utf8')) as { seq: number })
      .seq;
  const refused = async (attempt: Promise<unknown>, message: RegExp) => {
    const error = await t.throwsAsync(attempt, { instanceOf: FederationError, message });
    t.is(error?.code, 'FEDERATION_FORGED');
    return error?.message;
  };

  // Run 1.
  let roundTwoOpen: unknown;
  rewrite = (event, payload) => {
    const round = roundOf(payload);
    if (event === 'round:open' && round === 1) return DROP;
    if (event === 'round:closed' && round === 2) return DROP;
    if (event === 'round:open' && round === 2) roundTwoOpen = payload;
    // Round 2's announcement again, right behind round 3's.
    if (event === 'round:open' && round === 3) setImmediate(() => proxy.inject('round:open', roundTwoOpen));
    return payload;
  };
  await refused(
    run(),
    /^round 2's announcement is record \d+ of the round log, older than record \d+ this participant already saw/,
  );
  // Round 1: never announced to carol, so it waited for its deadline, then aborted; carol was told it ended.
  const [open1] = sent('round:open', 1);
  const [aborted1] = sent('round:closed', 1);
  t.is(aborted1.kind, 'round-aborted');
  // A timer may fire a millisecond before its time: the record's time is rounded to the millisecond.
  t.true(Date.parse(aborted1.time) >= Date.parse(open1.body.deadline) - 5, 'round 1 ran to its deadline');
  t.like(carol.history[0], { round: 1, selected: false, uploaded: false, outcome: 'aborted' });
  // Round 2: carol took part; its result never reached her.
  t.like(carol.history[1], { round: 2, selected: true, uploaded: true });
  t.is(carol.history[1].outcome, undefined, "round 2's result was never delivered");
  const [closed2] = sent('round:closed', 2);
  const [open3] = sent('round:open', 3);
  t.is(open3.body.globalAdapter, closed2.body.globalAdapterOut, "round 3 starts from round 2's output");
  t.is(await newestSeen(), open3.seq, 'the newest record seen is kept, not the replayed one');

  // Run 2: the first round result held back until the next announcement has gone through.
  let held: unknown;
  rewrite = (event, payload) => {
    if (event === 'round:closed' && held === undefined) {
      held = payload;
      return DROP;
    }
    if (event === 'round:open' && held !== undefined) setImmediate(() => proxy.inject('round:closed', held));
    return payload;
  };
  const second = run();
  const why = await refused(
    second,
    /^round \d+'s result is record \d+ of the round log, older than record \d+/,
  );
  const late = (held as Signed).record;
  t.true(why?.startsWith(`round ${late.round}'s result is record ${late.seq} `));
  t.is(late.kind, 'round-closed');
  const next = sent('round:open', late.round + 1)[0];
  t.truthy(next, 'the held result was delivered after the next announcement');
  t.is(await newestSeen(), next.seq);
  // Run 1 left round 3 open (carol was its one selected participant, back well within its 6 s
  // deadline, and the coordinator announced it again): she trained it on the global adapter it
  // announced, round 2's output, whose result she never saw; the coordinator counts only updates
  // built on the round's own global adapter.
  t.is(late.round, 3);
  t.like(
    carol.history.find((h) => h.round === 3),
    { selected: true, uploaded: true },
  );
  t.is(carol.history.find((h) => h.round === 3)?.outcome, undefined, 'the late result was not acted on');
  t.deepEqual(
    (late.body.updates as { participant: string }[]).map((u) => u.participant),
    [participantId],
    "carol's update on round 2's output was counted",
  );

  // Run 3: honest. The federation ends; carol holds its final adapter.
  rewrite = HONEST;
  const end = await run();
  t.is(end.reason, 'finished');
  const finished = proxy.seen.filter((s) => s.event === 'federation:finished').at(-1)!.payload as Signed;
  t.is(end.finalAdapter?.hash as string | undefined, finished.record.body.globalAdapterOut);
  t.true(end.history.some((h) => h.uploaded && h.outcome === 'aggregated'));
});
