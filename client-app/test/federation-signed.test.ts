// Everything a participant acts on is signed by the coordinator key its invite pins: a rewriting
// relay between participant and coordinator (fixtures/rewriting-proxy.ts) forges each thing the
// participant acts on (the settings, the global adapter's hash, the training settings, the
// selection, an old announcement replayed, a record signed by another key), and each forgery is
// refused with a message naming it, the participant's stored state untouched. The same relay,
// honest, carries a whole federation to its end.
import test, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInvite } from '@fedit/coordinator';
import {
  configHash,
  fingerprint,
  generateIdentity,
  parseInvite,
  roundRecordHash,
  signRoundRecord,
  type RoundRecord,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { FACTS } from '../../test/fixtures/tiny-federation.ts';
import {
  FederationError,
  joinFederation,
  membershipPath,
  Participant,
} from '../src/core/federation/index.ts';
import { tinyLoopbackFederation, writeFactsChat } from './fixtures/loopback.ts';
import { rewritingProxy, type Rewrite } from './fixtures/rewriting-proxy.ts';

type Body = Record<string, unknown> & {
  selection?: { selected: string[] };
  settings?: Record<string, unknown>;
};

/** `record` with its body changed by `edit`, re-hashed; signed again by `signer` if given (else the old signature stays). */
function forged(record: RoundRecord, edit: (body: Body) => void, signer?: Uint8Array): RoundRecord {
  const { hash: _hash, signature, ...fields } = structuredClone(record);
  edit(fields.body as Body);
  const unsigned = fields as UnsignedRoundRecord;
  return signer
    ? signRoundRecord(unsigned, signer)
    : ({ ...unsigned, hash: roundRecordHash(unsigned), signature } as RoundRecord);
}

/** A rewrite of the record in `event`'s payload (an event, or a request's acknowledgement). */
function rewriting(event: string, change: (record: RoundRecord) => RoundRecord): Rewrite {
  return (name, payload) => {
    if (name !== event) return payload;
    const message = payload as { record?: RoundRecord };
    return message.record ? { ...message, record: change(message.record) } : payload;
  };
}

const HONEST: Rewrite = (_event, payload) => payload;

async function setUp(t: ExecutionContext) {
  const fed = await tinyLoopbackFederation(t, {
    rounds: 2,
    participantsPerRound: { fraction: 1, minimum: 1 },
    minUpdates: 1,
  });
  let rewrite: Rewrite = HONEST;
  const proxy = await rewritingProxy(fed.coordinator.url, (...args) => rewrite(...args));
  t.teardown(() => proxy.close());
  const home = join(fed.dir, 'carol');
  const data = await writeFactsChat(join(fed.dir, 'carol.jsonl'), FACTS);
  const invite = () => createInvite(fed.fedDir, { url: proxy.url });
  return {
    fed,
    proxy,
    home,
    invite,
    through: (next: Rewrite) => (rewrite = next),
    run: (maxRounds?: number) =>
      new Participant().start({
        modelDir: fed.modelDir,
        dataFiles: [data],
        home,
        threads: 1,
        reconnectionDelayMax: 500,
        ...(maxRounds !== undefined && { maxRounds }),
      }),
  };
}

async function refused(t: ExecutionContext, attempt: Promise<unknown>, message: RegExp): Promise<void> {
  const error = await t.throwsAsync(attempt, { instanceOf: FederationError, message });
  t.is(error?.code, 'FEDERATION_FORGED');
}

test('each forgery of what a participant acts on is refused by name; the honest relay runs the federation to its end', async (t) => {
  const { fed, home, invite, through, run, proxy } = await setUp(t);
  const key = `\\(fingerprint ${fingerprint(parseInvite(invite()).coordinator)}\\)`;
  const impostor = generateIdentity().sign.secretKey;

  // The settings read before joining: a changed config text, its hash announced with it.
  through(
    rewriting('federation:info', (r) =>
      forged(r, (body) => {
        const config = { ...JSON.parse(body.settings!.config as string), name: 'forged' };
        body.settings = { ...body.settings, config: JSON.stringify(config), configHash: configHash(config) };
      }),
    ),
  );
  await refused(
    t,
    joinFederation(invite(), { home, displayName: 'carol' }),
    new RegExp(
      `^the settings of federation ${fed.coordinator.config.id} \\(config record 0\\) is not signed by this federation's coordinator ${key}`,
    ),
  );
  // The same text sent under the record's own hash: the record no longer hashes to it.
  through(
    rewriting(
      'federation:info',
      (r) => ({ ...r, body: { ...r.body, settings: { config: '{}' } } }) as RoundRecord,
    ),
  );
  await refused(
    t,
    joinFederation(invite(), { home, displayName: 'carol' }),
    /\(config record 0\) was altered: its content does not hash to its hash/,
  );

  through(HONEST);
  const joined = await joinFederation(invite(), { home, displayName: 'carol' });
  const federation = joined!.membership.federation;
  const membershipFile = membershipPath(home, federation);
  const membership = await readFile(membershipFile, 'utf8');

  // Training settings: a learning rate ten times higher and more steps, in the settings' record.
  through(
    rewriting('federation:info', (r) =>
      forged(r, (body) => {
        const config = JSON.parse(body.settings!.config as string) as {
          training: { lr: number; localSteps: number };
        };
        config.training.lr *= 10;
        config.training.localSteps *= 3;
        body.settings = { ...body.settings, config: JSON.stringify(config) };
      }),
    ),
  );
  await refused(
    t,
    run(),
    new RegExp(`\\(config record 0\\) is not signed by this federation's coordinator ${key}`),
  );

  // The round announcement: another global adapter, another selection, a record of another key.
  const announcement = /^a round announcement \(round 1's round-open record \d+\)/;
  through(
    rewriting('round:open', (r) => forged(r, (body) => (body.globalAdapter = `sha256:${'0'.repeat(64)}`))),
  );
  await refused(
    t,
    run(),
    new RegExp(`${announcement.source} is not signed by this federation's coordinator ${key}`),
  );
  through(rewriting('round:open', (r) => forged(r, (body) => body.selection!.selected.push('f'.repeat(32)))));
  await refused(
    t,
    run(),
    new RegExp(`${announcement.source} is not signed by this federation's coordinator ${key}`),
  );
  through(rewriting('round:open', (r) => forged(r, () => undefined, impostor)));
  await refused(
    t,
    run(),
    new RegExp(`${announcement.source} is not signed by this federation's coordinator ${key}`),
  );
  t.is(await readFile(membershipFile, 'utf8'), membership, 'the membership is untouched');

  // Honest: round 1 runs through the relay.
  through(HONEST);
  const first = await run(1);
  t.is(first.reason, 'max-rounds');
  t.like(first.history[0], { round: 1, selected: true, uploaded: true, outcome: 'aggregated' });

  // Round 1's announcement replayed in place of round 2's: older than round 1's result, seen.
  const opened = proxy.seen.find((s) => s.event === 'round:open')!.payload as { record: RoundRecord };
  t.is(opened.record.round, 1);
  const newest = await readFile(join(home, 'announced', `${federation}.json`), 'utf8');
  through((event, payload) => (event === 'round:open' ? opened : payload));
  await refused(
    t,
    run(),
    /^round 1's announcement is record \d+ of the round log, older than record \d+ this participant already saw: an old message replayed, or the coordinator shows another log; refused$/,
  );
  t.is(await readFile(join(home, 'announced', `${federation}.json`), 'utf8'), newest, 'what it saw is kept');

  // Round 2 runs, but the federation's end names another final adapter: refused after the round.
  through(
    rewriting('federation:finished', (r) =>
      forged(r, (body) => (body.globalAdapterOut = `sha256:${'1'.repeat(64)}`)),
    ),
  );
  await refused(
    t,
    run(),
    new RegExp(
      `^the federation's end \\(round 2's round-closed record \\d+\\) is not signed by this federation's coordinator ${key}`,
    ),
  );
  const closed = proxy.seen.filter((s) => s.event === 'round:closed').at(-1)!.payload as {
    record: RoundRecord & { body: { globalAdapterOut: string } };
  };
  t.is(closed.record.round, 2);

  // Honest again: the federation is over, its final adapter fetched through the relay.
  through(HONEST);
  const end = await run();
  t.is(end.reason, 'finished');
  t.is(end.finalAdapter?.hash as string | undefined, closed.record.body.globalAdapterOut);
});
