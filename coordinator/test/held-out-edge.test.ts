// Held-out figures at the coordinator's edge: a malformed figure in an update's envelope is
// refused naming its field, before anything is stored; well-formed ones, signed with the update,
// reach the round-closed record as their means, which the audit verifies.

import test from 'ava';
import { verifyRoundLog, type RoundClosedBody, type RoundRecord } from '@fedit/shared';
import { logRecords, startTestFederation } from './helpers/federation.ts';
import { Peer, type Ack } from './helpers/peer.ts';

const error = (ack: Ack) => (ack.ok ? undefined : ack.error);

test('a malformed held-out figure is refused naming its field; signed figures reach the round record', async (t) => {
  const fed = await startTestFederation(t, { rounds: 1, participantsPerRound: { fraction: 1, minimum: 1 } });
  const peer = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'carol');
  t.teardown(() => peer.close());
  const open = await peer.roundOpen(1);
  const update = await peer.update(open, {
    envelope: { heldOut: { examples: 4, meanLossMicronats: 2_345_678, exactMatches: 3 } },
  });
  const begin = (heldOut: unknown) =>
    peer.request('update:begin', { envelope: { ...update.envelope, heldOut } });
  for (const [heldOut, field] of [
    [{ examples: 4, meanLossMicronats: 2.5 }, 'envelope.heldOut.meanLossMicronats'],
    [{ examples: 4, meanLossMicronats: -1 }, 'envelope.heldOut.meanLossMicronats'],
    [{ examples: 4, meanLossMicronats: 'NaN' }, 'envelope.heldOut.meanLossMicronats'],
    [{ examples: 0, meanLossMicronats: 5 }, 'envelope.heldOut.examples'],
    [{ examples: 33, meanLossMicronats: 5 }, 'envelope.heldOut.examples'],
    [{ examples: 4, meanLossMicronats: 5, exactMatches: 5 }, 'envelope.heldOut.exactMatches'],
    [{ examples: 4, meanLossMicronats: 5, loss: 1 }, 'envelope.heldOut.loss'],
  ] as const) {
    const refused = error(await begin(heldOut));
    t.is(refused?.field, field, JSON.stringify(heldOut));
    t.true(refused?.message.startsWith(field), refused?.message);
  }
  // Figures other than the signed ones: the signature no longer verifies.
  t.like(error(await begin({ examples: 4, meanLossMicronats: 1 })), {
    code: 'PROTOCOL_SIGNATURE',
    field: 'envelope.signature',
  });

  t.true((await peer.upload(update)).ok);
  await fed.waitFor('round-closed', (e) => e.round === 1);
  const records = (await logRecords(fed.root)) as RoundRecord[];
  const closed = records.find((r) => r.kind === 'round-closed')!.body as RoundClosedBody;
  t.deepEqual(closed.heldOut, {
    reports: 1,
    examples: 4,
    meanLoss: '2.345678',
    exactMatchExamples: 4,
    exactMatch: '0.750000',
  });
  t.deepEqual(closed.updates[0].envelope.heldOut, {
    examples: 4,
    meanLossMicronats: 2_345_678,
    exactMatches: 3,
  });
  t.deepEqual(verifyRoundLog(records, { federation: records[0].federation }).problems, []);
});
