// What a hostile peer or a lying coordinator sends a secure round's engines is refused by name:
// forged, replayed, repeated, late and stranger payloads at the collector; forged or altered
// records and boxes at the participant; and the wire validators bound every list and byte string
// before anything is allocated for it.

import test, { type ExecutionContext } from 'ava';
import nacl from 'tweetnacl';
import {
  ProtocolError,
  SecAggError,
  SecureRoundClient,
  SecureRoundCollector,
  ruleRefFor,
  selectParticipants,
  signRoundRecord,
  validateSecaggReveal,
  validateSecaggShares,
  type RoundRecordOf,
  type SecaggKeysBody,
} from '@fedit/shared';
import { COORDINATOR, LENGTH, SecureFederation, deltaOf, member } from './helpers/secure-round.ts';

/** A round of `n` opened in a fresh federation, with its collector and one client per participant. */
function opened(n = 4, round = 1, fed = new SecureFederation({ n, graph: 'complete' })) {
  const seed = `seed-${round}`;
  const selection = { seed, fraction: '1', minimum: n, selected: selectParticipants(seed, fed.ids, '1', n) };
  const open = fed.append('round-open', round, {
    rule: ruleRefFor(fed.config),
    selection,
    globalAdapter: fed.globalAdapter,
    deadline: '2026-05-02T00:00:00.000Z',
  });
  const federation = fed.config.id;
  const collector = new SecureRoundCollector({
    federation,
    round,
    config: fed.config,
    selected: selection.selected,
    signingKeys: new Map(fed.ids.map((id) => [id, fed.identityOf(id).sign.publicKey])),
    roundOpenHash: open.hash,
    length: LENGTH,
  });
  const clients = new Map(
    fed.ids.map((id) => [
      id,
      new SecureRoundClient({
        federation,
        round,
        participant: id,
        identitySecretKey: fed.identityOf(id).sign.secretKey,
        config: fed.config,
        roundOpen: open,
      }),
    ]),
  );
  return { fed, open, collector, clients, ids: [...fed.ids].sort() };
}

const code = (t: ExecutionContext, fn: () => unknown) => t.throws(fn, { instanceOf: SecAggError })!.code;

/** Re-signs an edited copy of a record as the coordinator (a lying coordinator signs what it likes). */
function resign<K extends 'secagg-keys' | 'secagg-shares'>(
  record: RoundRecordOf<K>,
  body: RoundRecordOf<K>['body'],
): RoundRecordOf<K> {
  const { hash: _h, signature: _s, ...rest } = record;
  return signRoundRecord({ ...rest, body } as never, COORDINATOR.secretKey) as RoundRecordOf<K>;
}

test('the collector refuses forged, stranger, repeated, replayed and late adverts by name', (t) => {
  const { fed, collector, clients, ids } = opened();
  const [a, b] = ids;
  const advert = clients.get(a)!.advertise();
  // Signed by another participant's key: a forgery.
  const forged = {
    ...advert,
    signature: nacl.sign.detached(new Uint8Array(32), fed.identityOf(b).sign.secretKey),
  };
  t.is(
    code(t, () => collector.addAdvertise(a, forged)),
    'SECAGG_SIGNATURE',
  );
  t.is(
    code(t, () => collector.addAdvertise(member('stranger').id, advert)),
    'SECAGG_STRANGER',
  );
  // Another participant's advert presented as b's own: b's key did not sign it.
  t.is(
    code(t, () => collector.addAdvertise(b, advert)),
    'SECAGG_SIGNATURE',
  );
  t.is(
    code(t, () => collector.addAdvertise(a, { ...advert, round: 2 })),
    'SECAGG_INPUT',
  );
  collector.addAdvertise(a, advert);
  t.is(
    code(t, () => collector.addAdvertise(a, advert)),
    'SECAGG_REPEAT',
  );
  for (const id of ids.slice(1)) collector.addAdvertise(id, clients.get(id)!.advertise());
  collector.keysBody();
  t.is(
    code(t, () => collector.addAdvertise(a, advert)),
    'SECAGG_PHASE',
  );
});

test('an advert replayed into the next round does not verify: the round is in what was signed', (t) => {
  const first = opened(3, 1);
  const [a] = first.ids;
  const old = first.clients.get(a)!.advertise();
  const next = opened(3, 2, first.fed);
  t.is(
    code(t, () => next.collector.addAdvertise(a, old)),
    'SECAGG_INPUT',
  );
  t.is(
    code(t, () => next.collector.addAdvertise(a, { ...old, round: 2 })),
    'SECAGG_SIGNATURE',
  );
});

/** Advertises everyone and writes the secagg-keys record. */
function keyed(n = 4) {
  const o = opened(n);
  for (const id of o.ids) o.collector.addAdvertise(id, o.clients.get(id)!.advertise());
  const keys = o.fed.append('secagg-keys', 1, o.collector.keysBody());
  return { ...o, keys };
}

test('a participant refuses a secagg-keys record with a stranger, a forged advert, another graph, or without it', (t) => {
  const { fed, keys, clients, ids } = keyed();
  const client = clients.get(ids[0])!;
  const body = keys.body;
  const swap = (edit: (b: SecaggKeysBody) => SecaggKeysBody) => resign(keys, edit(structuredClone(body)));
  const strangerKeys = swap((b) => ({
    ...b,
    advertised: [...b.advertised.slice(0, -1), { ...b.advertised.at(-1)!, participant: 'f'.repeat(32) }],
  }));
  t.is(
    code(t, () => client.onKeys(strangerKeys, fed.signingKey)),
    'SECAGG_STRANGER',
  );
  const forged = swap((b) => {
    b.advertised[1].maskKey = b.advertised[2].maskKey;
    return b;
  });
  t.is(
    code(t, () => client.onKeys(forged, fed.signingKey)),
    'SECAGG_SIGNATURE',
  );
  t.is(
    code(t, () =>
      client.onKeys(
        swap((b) => ({ ...b, threshold: 2 })),
        fed.signingKey,
      ),
    ),
    'SECAGG_INPUT',
  );
  t.is(
    code(t, () =>
      client.onKeys(
        swap((b) => ({ ...b, graph: { ...b.graph, seed: 'a'.repeat(64) } })),
        fed.signingKey,
      ),
    ),
    'SECAGG_INPUT',
  );
  // Consistent for the three left (complete graph of degree 2, t = 2), but without this participant.
  const without = swap((b) => ({
    graph: { ...b.graph, degree: 2 },
    threshold: 2,
    advertised: b.advertised.filter((a) => a.participant !== ids[0]),
  }));
  t.is(
    code(t, () => client.onKeys(without, fed.signingKey)),
    'SECAGG_REFUSED',
  );
  // The honest record is still accepted after the refusals: nothing was changed by them.
  t.is(client.onKeys(keys, fed.signingKey).ciphertexts.length, 3);
});

test('the collector refuses shares with a missing box, a stranger, a forged signature, and a repeat', (t) => {
  const { fed, keys, collector, clients, ids } = keyed();
  const payloads = new Map(ids.map((id) => [id, clients.get(id)!.onKeys(keys, fed.signingKey)]));
  const [a, b] = ids;
  const p = payloads.get(a)!;
  t.is(
    code(t, () => collector.addShares(a, { ...p, ciphertexts: p.ciphertexts.slice(1) })),
    'SECAGG_INPUT',
  );
  t.is(
    code(t, () => collector.addShares(member('stranger').id, p)),
    'SECAGG_STRANGER',
  );
  t.is(
    code(t, () => collector.addShares(b, p)),
    'SECAGG_INPUT',
  );
  const altered = { ...p, selfSeedCommitment: new Uint8Array(32).fill(1) };
  t.is(
    code(t, () => collector.addShares(a, altered)),
    'SECAGG_SIGNATURE',
  );
  collector.addShares(a, p);
  t.is(
    code(t, () => collector.addShares(a, p)),
    'SECAGG_REPEAT',
  );
  t.is(
    code(t, () => collector.inbox(a)),
    'SECAGG_PHASE',
  );
});

/** Through the shares phase: the shares record written, inboxes ready. */
function shared(n = 4) {
  const o = keyed(n);
  for (const id of o.ids) o.collector.addShares(id, o.clients.get(id)!.onKeys(o.keys, o.fed.signingKey));
  const shares = o.fed.append('secagg-shares', 1, o.collector.sharesBody());
  return { ...o, shares };
}

test('a participant refuses boxes that are altered, repeated, or from a stranger, and a shares record that drops its own', (t) => {
  const { shares, collector, clients, ids } = shared();
  const [a, b] = ids;
  const inbox = collector.inbox(a);
  const client = clients.get(a)!;
  const tampered = inbox.map((c, k) =>
    k === 0 ? { ...c, box: c.box.map((x, i) => (i === 20 ? x ^ 1 : x)) } : c,
  );
  t.is(
    code(t, () => client.onInbox(tampered, shares)),
    'SECAGG_INPUT',
  );
  t.is(
    code(t, () => client.onInbox([...inbox, inbox[0]], shares)),
    'SECAGG_REPEAT',
  );
  t.is(
    code(t, () => client.onInbox([{ from: member('stranger').id, box: inbox[0].box }], shares)),
    'SECAGG_STRANGER',
  );
  // A box b sealed for a, presented as c's: it does not open under c's key.
  const misattributed = [{ from: ids[2], box: inbox.find((c) => c.from === b)!.box }];
  t.is(
    code(t, () => client.onInbox(misattributed, shares)),
    'SECAGG_INPUT',
  );
  const withoutMe = resign(shares, { shared: shares.body.shared.filter((s) => s.participant !== a) });
  t.is(
    code(t, () => client.onInbox(inbox, withoutMe)),
    'SECAGG_REFUSED',
  );
  const forgedEntry = resign(shares, {
    shared: shares.body.shared.map((s) => (s.participant === b ? { ...s, sharesHash: '0'.repeat(64) } : s)),
  });
  t.is(
    code(t, () => client.onInbox(inbox, forgedEntry)),
    'SECAGG_SIGNATURE',
  );
  client.onInbox(inbox, shares);
  t.is(
    code(t, () => client.onInbox(inbox, shares)),
    'SECAGG_PHASE',
  );
});

test('the collector refuses reveals that are forged, from the dropped, or of the wrong kind', (t) => {
  const { fed, collector, clients, ids, shares } = shared(4);
  const [a, b, c, d] = ids;
  for (const id of [a, b, c]) {
    clients.get(id)!.onInbox(collector.inbox(id), shares);
    const y = clients.get(id)!.mask(deltaOf(1, 0), 3);
    collector.addMasked(id, {
      hash: `sha256:${'1'.repeat(64)}`,
      envelopeDigest: `sha256:${'2'.repeat(64)}`,
      envelope: {} as never,
    });
    t.is(y.length, LENGTH);
  }
  t.is(
    code(t, () => collector.addMasked(a, { hash: '', envelopeDigest: '', envelope: {} as never })),
    'SECAGG_REPEAT',
  );
  const unmask = fed.append('secagg-unmask', 1, collector.unmaskBody());
  t.deepEqual(unmask.body.dropped, [d]);
  collector.unmaskRecorded(unmask.hash);
  const signed = new Map([a, b, c].map((id) => [id, clients.get(id)!.onUnmask(unmask)]));
  t.is(
    code(t, () => collector.addReveal(a, {} as never)),
    'SECAGG_PHASE',
    'no reveal before the consistency record',
  );
  t.is(
    code(t, () => collector.addConsistency(d, signed.get(a)!)),
    'SECAGG_STRANGER',
  );
  t.is(
    code(t, () => collector.addConsistency(b, signed.get(a)!)),
    'SECAGG_SIGNATURE',
  );
  t.is(
    code(t, () => collector.addConsistency(a, { ...signed.get(a)!, round: 2 })),
    'SECAGG_INPUT',
  );
  for (const [id, s] of signed) collector.addConsistency(id, s);
  t.is(
    code(t, () => collector.addConsistency(a, signed.get(a)!)),
    'SECAGG_REPEAT',
  );
  const consistency = fed.append('secagg-consistency', 1, collector.consistencyBody());
  t.deepEqual(
    consistency.body.signatures.map((s) => s.participant),
    [a, b, c].sort(),
  );
  const reveal = clients.get(a)!.onConsistency(consistency);
  t.is(
    code(t, () => collector.addReveal(d, reveal)),
    'SECAGG_STRANGER',
  );
  t.is(
    code(t, () => collector.addReveal(b, reveal)),
    'SECAGG_SIGNATURE',
  );
  const wrongKind = {
    ...reveal,
    self: [...reveal.self, { owner: d, share: reveal.key[0].share }].sort((x, y) =>
      x.owner < y.owner ? -1 : 1,
    ),
  };
  t.is(
    code(t, () => collector.addReveal(a, wrongKind)),
    'SECAGG_INPUT',
  );
  collector.addReveal(a, reveal);
  t.is(
    code(t, () => collector.addReveal(a, reveal)),
    'SECAGG_REPEAT',
  );
  t.false(collector.canUnmask());
});

test('the wire validators bound lists and bytes before allocating, naming the field', (t) => {
  const base = { round: 1, selfSeedCommitment: new Uint8Array(32), signature: new Uint8Array(64) };
  const huge = new Array<unknown>(70_000); // sparse: nothing allocated per item
  const tooMany = t.throws(() => validateSecaggShares({ ...base, ciphertexts: huge }), {
    instanceOf: ProtocolError,
  });
  t.regex(tooMany!.message, /payload\.ciphertexts must hold 0 to 65535 entries/);
  const shortBox = t.throws(
    () => validateSecaggShares({ ...base, ciphertexts: [{ to: 'a'.repeat(32), box: new Uint8Array(10) }] }),
    { instanceOf: ProtocolError },
  );
  t.regex(shortBox!.message, /payload\.ciphertexts\[0\]\.box/);
  const badShare = t.throws(
    () =>
      validateSecaggReveal({
        round: 1,
        self: [{ owner: 'a'.repeat(32), share: new Uint8Array(67) }],
        key: [],
        signature: new Uint8Array(64),
      }),
    { instanceOf: ProtocolError },
  );
  t.regex(badShare!.message, /payload\.self\[0\]\.share/);
});
