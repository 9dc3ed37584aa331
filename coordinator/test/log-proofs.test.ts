// log:head, log:inclusion and log:consistency against a real coordinator after two rounds: the
// signed head is the tree of the log on disk, every record's inclusion proof and every size's
// consistency proof verify against the coordinator's signed heads, a round names its round-closed
// record, and what is out of range, malformed or asked before authentication is refused naming
// the field.

import test from 'ava';
import {
  federationPaths,
  readRoundLog,
  recordLeafHash,
  recordTree,
  rootBytes,
  rootString,
  verifyConsistency,
  verifyInclusion,
  verifyTreeHeadSignature,
  type SignedTreeHead,
} from '@fedit/shared';
import { startTestFederation } from './helpers/federation.ts';
import { Peer, type Ack } from './helpers/peer.ts';

const ok = (ack: Ack) => {
  if (!ack.ok) throw new Error(JSON.stringify(ack.error));
  return ack as Record<string, unknown>;
};

test('heads, inclusion and consistency proofs over the real log verify; bad requests are refused naming the field', async (t) => {
  const fed = await startTestFederation(t, {
    rounds: 2,
    participantsPerRound: { fraction: 1, minimum: 2 },
    minUpdates: 2,
  });
  const peers = [
    await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'a'),
    await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'b'),
  ];
  t.teardown(() => peers.forEach((p) => p.close()));
  for (let round = 1; round <= 2; round++) {
    for (const peer of peers) ok(await peer.upload(await peer.update(await peer.roundOpen(round))));
    await peers[0].roundClosed(round);
  }
  await fed.coordinator.finished;
  const { records } = await readRoundLog(federationPaths(fed.root).log);
  const tree = recordTree(records);
  const key = fed.target().coordinator.sign;
  const [peer] = peers;

  const { head } = ok(await peer.request('log:head', {})) as { head: SignedTreeHead };
  t.true(verifyTreeHeadSignature(head, key));
  t.like(head, { federation: records[0].federation, size: records.length, root: rootString(tree.root()) });
  t.is(records.at(-1)!.kind, 'finished');

  for (const record of records) {
    const answer = ok(await peer.request('log:inclusion', { seq: record.seq })) as {
      record: string;
      proof: Uint8Array[];
      head: SignedTreeHead;
    };
    t.is(answer.record, JSON.stringify(JSON.parse(answer.record)));
    t.is((JSON.parse(answer.record) as { hash: string }).hash, record.hash);
    t.deepEqual(answer.head, head, 'one head per size: every participant gets the same');
    if (!verifyInclusion(record.seq, head.size, recordLeafHash(record), answer.proof, rootBytes(head.root)))
      t.fail(`record ${record.seq}`);
  }
  const closed2 = records.find((r) => r.kind === 'round-closed' && r.round === 2)!;
  const byRound = ok(await peer.request('log:inclusion', { round: 2, size: closed2.seq + 1 })) as {
    record: string;
    head: SignedTreeHead;
  };
  t.is((JSON.parse(byRound.record) as { seq: number }).seq, closed2.seq);
  t.is(byRound.head.size, closed2.seq + 1);
  t.is(byRound.head.root, rootString(tree.root(closed2.seq + 1)));

  for (let from = 0; from <= records.length; from++) {
    const answer = ok(await peer.request('log:consistency', { from })) as {
      proof: Uint8Array[];
      from: SignedTreeHead;
      to: SignedTreeHead;
    };
    t.true(verifyTreeHeadSignature(answer.from, key));
    t.is(answer.from.root, rootString(tree.root(from)));
    if (!verifyConsistency(from, head.size, rootBytes(answer.from.root), rootBytes(head.root), answer.proof))
      t.fail(`from ${from}`);
  }

  const refused = async (event: string, payload: unknown, code: string, message: RegExp, p = peer) => {
    const ack = await p.request(event, payload);
    t.false(ack.ok, `${event} ${JSON.stringify(payload)}`);
    if (!ack.ok) {
      t.is(ack.error.code, code, ack.error.message);
      t.regex(ack.error.message, message);
    }
  };
  const size = records.length;
  await refused(
    'log:inclusion',
    { seq: size },
    'LOG_SEQ',
    new RegExp(`seq ${size} is not a record of a head of size ${size}`),
  );
  await refused(
    'log:inclusion',
    { seq: 0, size: size + 1 },
    'LOG_SIZE',
    new RegExp(`holds ${size} records; there is no head of size ${size + 1}`),
  );
  await refused('log:inclusion', { seq: 1, round: 1 }, 'LOG_SEQ', /either seq .* or round .*, not both/);
  await refused('log:inclusion', {}, 'LOG_SEQ', /either seq .* or round .*, not both/);
  await refused('log:inclusion', { round: 9 }, 'LOG_SEQ', /round 9 has no round-closed record/);
  await refused('log:consistency', { from: 3, to: 2 }, 'LOG_SIZE', /from 3 is beyond log:consistency.to 2/);
  await refused('log:inclusion', { seq: -1 }, 'PROTOCOL_RANGE', /seq/);
  await refused('log:inclusion', { seq: 2 ** 31 }, 'PROTOCOL_RANGE', /seq/);
  await refused('log:consistency', { from: 0, extra: 1 }, 'PROTOCOL_UNKNOWN_FIELD', /extra/);
  const stranger = await Peer.connect(fed.target());
  t.teardown(() => stranger.close());
  await refused('log:head', {}, 'AUTH_REQUIRED', /authenticate first/, stranger);
});
