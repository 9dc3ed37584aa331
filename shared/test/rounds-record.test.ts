// Round records: the canonical encoding they are hashed in, the hash and signature, and the shape
// every record must have.

import test from 'ava';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  canonicalJson,
  parseRoundRecord,
  roundRecordDigest,
  roundRecordHash,
  roundRecordLine,
  RoundLogError,
  signRoundRecord,
  verifyDigest,
  verifyRoundRecordSignature,
  ZERO_HASH,
  type RoundLogErrorCode,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { participantIdentity, signedUpdate } from './helpers/envelopes.ts';

const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
const hashOf = (c: string) => `sha256:${c.repeat(64)}`;

const isRoundError = (code: RoundLogErrorCode, text?: RegExp) => (err: unknown) =>
  err instanceof RoundLogError && err.code === code && (text === undefined || text.test(err.message));

const unsigned: UnsignedRoundRecord = {
  seq: 0,
  federation: 'clinic-notes',
  round: 0,
  kind: 'config',
  prevHash: ZERO_HASH,
  time: '2026-01-02T03:04:05.678Z',
  body: { settings: { baseModel: 'smollm2-135m', rank: 8, lr: '0.0002' }, globalAdapter: hashOf('a') },
};

test('canonical JSON sorts keys by UTF-8 bytes, at every depth, with no whitespace', (t) => {
  t.is(
    canonicalJson({ b: 1, a: [true, null, { d: 'x', c: -2 }] }),
    '{"a":[true,null,{"c":-2,"d":"x"}],"b":1}',
  );
  // U+FF5E sorts after U+1F600 in UTF-16 code units but before it in UTF-8 bytes (and code points).
  t.is(canonicalJson({ '\u{1F600}': 1, '\uFF5E': 2, Z: 3, a: 4 }), '{"Z":3,"a":4,"\uFF5E":2,"\u{1F600}":1}');
});

test('canonical JSON escapes strings as JSON.stringify does and keeps other characters as they are', (t) => {
  t.is(
    canonicalJson('q"b\\n\n\t\u0001\u001f é \u2028 \u007f'),
    '"q\\"b\\\\n\\n\\t\\u0001\\u001f é \u2028 \u007f"',
  );
  t.is(canonicalJson(-0), '0');
  t.is(canonicalJson(Number.MAX_SAFE_INTEGER), '9007199254740991');
});

test('canonical JSON refuses what has no canonical form, naming where it is', (t) => {
  const cases: [unknown, RegExp][] = [
    [{ metrics: { loss: 1.5 } }, /\$\.metrics\.loss is the number 1\.5; .*decimal strings/],
    [{ a: undefined }, /\$\.a is undefined; leave the key out/],
    [[1, NaN], /\$\[1\] is the number NaN/],
    [{ big: 2 ** 53 }, /\$\.big is the number 9007199254740992/],
    [{ m: new Map() }, /\$\.m is a Map/],
    [{ bytes: new Uint8Array(2) }, /\$\.bytes is a Uint8Array/],
    [{ s: 'a\ud800b' }, /\$\.s is a string with a lone UTF-16 surrogate/],
    [{ n: 1n }, /\$\.n is a bigint/],
    [undefined, /\$ is undefined/],
  ];
  for (const [value, message] of cases) {
    t.true(
      isRoundError('ROUND_RECORD_CANONICAL', message)(t.throws(() => canonicalJson(value))),
      String(message),
    );
  }
});

test('the record hash is SHA-256 of "fedit/record/v1" and the canonical record without hash and signature', (t) => {
  const text =
    '{"body":{"globalAdapter":"' +
    hashOf('a') +
    '","settings":{"baseModel":"smollm2-135m","lr":"0.0002","rank":8}},"federation":"clinic-notes","kind":"config","prevHash":"' +
    ZERO_HASH +
    '","round":0,"seq":0,"time":"2026-01-02T03:04:05.678Z"}';
  const expected = createHash('sha256').update('fedit/record/v1').update(text).digest('hex');
  t.is(roundRecordHash(unsigned), `sha256:${expected}`);
  const signed = signRoundRecord(unsigned, keys.secretKey);
  t.is(signed.hash, `sha256:${expected}`);
  // Hash and signature fields do not feed the hash.
  t.is(roundRecordHash(signed), signed.hash);
});

test("the signature is Ed25519 over the digest under the domain 'fedit/record/v1', as crypto signs digests", (t) => {
  const signed = signRoundRecord(unsigned, keys.secretKey);
  const digest = roundRecordDigest(signed);
  t.is(digest.length, 32);
  const signature = Buffer.from(signed.signature, 'hex');
  t.regex(signed.signature, /^[0-9a-f]{128}$/);
  // Written out from crypto/sign.ts: Ed25519 over SHA-256(u8 len(domain) || domain || digest).
  const domain = Buffer.from('fedit/record/v1');
  const message = createHash('sha256')
    .update(Uint8Array.of(domain.length))
    .update(domain)
    .update(digest)
    .digest();
  t.true(nacl.sign.detached.verify(message, signature, keys.publicKey));
  t.true(verifyDigest(keys.publicKey, 'fedit/record/v1', digest, signature));
  t.true(verifyRoundRecordSignature(signed, keys.publicKey));
  t.false(verifyRoundRecordSignature(signed, nacl.sign.keyPair().publicKey));
  t.false(verifyRoundRecordSignature({ ...signed, seq: 1 }, keys.publicKey));
});

test('a record line is its canonical JSON and a newline, and parses back to the same record', (t) => {
  const signed = signRoundRecord(unsigned, keys.secretKey);
  const line = roundRecordLine(signed);
  t.true(line.endsWith('}\n'));
  t.is(line.indexOf('\n'), line.length - 1);
  t.deepEqual(parseRoundRecord(JSON.parse(line)), signed);
});

test('parseRoundRecord names the field that is wrong', (t) => {
  const signed = signRoundRecord(unsigned, keys.secretKey);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...signed, seq: -1 }, /record\.seq is not a non-negative integer/],
    [{ ...signed, kind: 'merge' }, /record\.kind is "merge"; kinds are config, enrol/],
    [{ ...signed, prevHash: 'abc' }, /record\.prevHash is not a content hash/],
    [{ ...signed, time: '2026-01-02 03:04:05' }, /record\.time is not a UTC time/],
    [{ ...signed, signature: 'zz' }, /record\.signature is not 128 lowercase hex/],
    [{ ...signed, extra: 1 }, /record\.extra is not a field of round records/],
    [{ ...signed, body: { globalAdapter: hashOf('b') } }, /record\.body\.settings is not an object/],
    [
      {
        ...signed,
        kind: 'round-closed',
        body: {
          rule: { name: 'fedit', config: {} },
          selection: { seed: 's', fraction: '0.5', minimum: 1, selected: ['p'] },
          updates: [
            {
              participant: 'p',
              envelopeDigest: hashOf('c'),
              exampleCount: 0,
              updateHash: hashOf('d'),
              envelope: {},
            },
          ],
          globalAdapterIn: hashOf('a'),
          globalAdapterOut: hashOf('b'),
          dropped: [],
          metrics: {},
        },
      },
      /record\.body\.updates\[0\]\.exampleCount is not a positive integer/,
    ],
    [
      {
        ...signed,
        kind: 'round-open',
        body: {
          rule: { name: 'fedit', config: {} },
          selection: { seed: 's', fraction: '0', minimum: 1, selected: ['p'] },
          globalAdapter: hashOf('a'),
          deadline: '2026-01-02T03:04:05.678Z',
        },
      },
      /record\.body\.selection\.fraction is not a decimal string in \(0, 1\]/,
    ],
  ];
  for (const [value, message] of cases) {
    t.true(
      isRoundError('ROUND_RECORD_SHAPE', message)(t.throws(() => parseRoundRecord(value))),
      String(message),
    );
  }
});

/** A signed round-closed record counting one update with its participant's signed envelope. */
function closedRecord(update: Record<string, unknown> = {}, body: Record<string, unknown> = {}) {
  const signed = signedUpdate(participantIdentity('ana'), {
    federation: 'clinic-notes',
    round: 1,
    globalAdapterHash: hashOf('a'),
    exampleCount: 3,
  });
  return signRoundRecord(
    {
      ...unsigned,
      seq: 2,
      round: 1,
      kind: 'round-closed',
      body: {
        rule: { name: 'fedit', config: {} },
        selection: { seed: 's', fraction: '1', minimum: 1, selected: ['p'] },
        updates: [{ participant: 'p', exampleCount: 3, updateHash: hashOf('d'), ...signed, ...update }],
        globalAdapterIn: hashOf('a'),
        globalAdapterOut: hashOf('b'),
        dropped: [],
        metrics: { train_loss: '1.5', steps: 10 },
        ...body,
      },
    } as UnsignedRoundRecord,
    keys.secretKey,
  );
}

test('fields a body does not declare are kept at any depth, and count in its hash', (t) => {
  const record = closedRecord(
    { note: 'kept' },
    { rule: { name: 'fedit', config: {}, later: [1] }, extra: 'x' },
  );
  const parsed = parseRoundRecord(JSON.parse(roundRecordLine(record)));
  t.deepEqual(parsed, record);
  t.is(roundRecordHash(parsed), record.hash);
  t.true(verifyRoundRecordSignature(parsed, keys.publicKey));
  const changed = structuredClone(parsed);
  (changed.body as Record<string, unknown>).extra = 'y';
  t.not(roundRecordHash(changed), record.hash);
});

test("a recorded envelope is checked with the protocol's declarations of the envelope's fields", (t) => {
  /** The record as read back, with its counted update's envelope changed by `change`. */
  const withEnvelope = (change: (envelope: Record<string, unknown>) => void) => {
    const value = JSON.parse(roundRecordLine(closedRecord())) as {
      body: { updates: { envelope: Record<string, unknown> }[] };
    };
    change(value.body.updates[0].envelope);
    return value;
  };
  const at = 'record\\.body\\.updates\\[0\\]\\.envelope';
  const cases: [(e: Record<string, unknown>) => void, RegExp][] = [
    [(e) => (e.version = 2), new RegExp(`${at}\\.version must be 1, got 2`)],
    [(e) => (e.federation = 'a b'), new RegExp(`${at}\\.federation must be 1-64 letters`)],
    [(e) => (e.payloadHash = 'sha256:x'), new RegExp(`${at}\\.payloadHash must be "sha256:"`)],
    [(e) => (e.participant = 'ab'), new RegExp(`${at}\\.participant is not 64 lowercase hex digits`)],
    [(e) => (e.tensorSchema = []), new RegExp(`${at}\\.tensorSchema is not a field of recorded envelopes`)],
    [(e) => delete e.signature, new RegExp(`${at}\\.signature is not 128 lowercase hex digits`)],
  ];
  for (const [change, message] of cases) {
    t.true(
      isRoundError('ROUND_RECORD_SHAPE', message)(t.throws(() => parseRoundRecord(withEnvelope(change)))),
      String(message),
    );
  }
  const withoutEnvelope = JSON.parse(roundRecordLine(closedRecord())) as {
    body: { updates: Record<string, unknown>[] };
  };
  delete withoutEnvelope.body.updates[0].envelope;
  t.true(
    isRoundError(
      'ROUND_RECORD_SHAPE',
      new RegExp(`${at} is missing: every counted update records`),
    )(t.throws(() => parseRoundRecord(withoutEnvelope))),
  );
});

test('parseRoundRecord returns the record as read, and names metrics that are floats', (t) => {
  const record = closedRecord();
  t.is(parseRoundRecord(record), record);
  t.true(
    isRoundError(
      'ROUND_RECORD_SHAPE',
      /record\.body\.metrics\.loss is neither an integer nor a string/,
    )(t.throws(() => parseRoundRecord({ ...record, body: { ...record.body, metrics: { loss: 1.5 } } }))),
  );
});
