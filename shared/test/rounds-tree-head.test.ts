// Signed tree heads (tree-head.ts): the digest is exactly the one the header writes down (rebuilt
// here from its text, as another language would), the signature is Ed25519 over the domain-tagged
// digest and binds every field, and a head that is not one is refused naming the field.

import test from 'ava';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  parseTreeHead,
  recordTree,
  rootString,
  RoundLogError,
  signTreeHead,
  treeHeadDigest,
  verifyTreeHeadSignature,
} from '@fedit/shared';

const key = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8));
const root = rootString(recordTree([{ hash: `sha256:${'12'.repeat(32)}` }]).root());
const unsigned = { federation: 'fed', size: 1, root, time: '2026-12-07T21:00:00.000Z' };

test('the digest is SHA-256("fedit/tree-head/v1" || canonical JSON of {federation, root, size, time})', (t) => {
  const text = `{"federation":"fed","root":"${root}","size":1,"time":"2026-12-07T21:00:00.000Z"}`;
  const expected = createHash('sha256').update('fedit/tree-head/v1').update(text).digest('hex');
  t.is(Buffer.from(treeHeadDigest(unsigned)).toString('hex'), expected);
  // The root of one leaf D is SHA-256(0x00 || D).
  const leaf = createHash('sha256')
    .update(Uint8Array.of(0))
    .update(Buffer.from('12'.repeat(32), 'hex'));
  t.is(root, `sha256:${leaf.digest('hex')}`);
});

test('the signature is Ed25519 over SHA-256(u8 len || domain || D) and binds every field', (t) => {
  const head = signTreeHead(unsigned, key.secretKey);
  const tag = Buffer.from('fedit/tree-head/v1');
  const message = createHash('sha256')
    .update(Uint8Array.of(tag.length))
    .update(tag)
    .update(treeHeadDigest(unsigned))
    .digest();
  t.true(nacl.sign.detached.verify(message, Buffer.from(head.signature, 'hex'), key.publicKey));
  t.true(verifyTreeHeadSignature(head, key.publicKey));
  t.false(verifyTreeHeadSignature(head, other.publicKey));
  for (const changed of [
    { federation: 'fed2' },
    { size: 2 },
    { root: `sha256:${'0'.repeat(64)}` },
    { time: '2026-12-07T21:00:00.001Z' },
  ])
    t.false(verifyTreeHeadSignature({ ...head, ...changed }, key.publicKey), JSON.stringify(changed));
  t.false(verifyTreeHeadSignature({ ...head, signature: 'zz' }, key.publicKey));
});

test('a value that is not a signed head is refused naming the field', (t) => {
  const head = signTreeHead(unsigned, key.secretKey);
  t.deepEqual(parseTreeHead(JSON.parse(JSON.stringify(head))), head);
  const cases: [unknown, RegExp][] = [
    [{ ...head, size: -1 }, /head\.size is not a non-negative integer/],
    [{ ...head, root: 'abc' }, /head\.root is not a hash/],
    [{ ...head, time: 'yesterday' }, /head\.time is not a UTC time/],
    [{ ...head, signature: undefined }, /head\.signature/],
    [{ ...head, extra: 1 }, /head\.extra/],
    ['head', /head/],
  ];
  for (const [value, message] of cases)
    t.throws(() => parseTreeHead(value), { instanceOf: RoundLogError, message }, JSON.stringify(value));
});
