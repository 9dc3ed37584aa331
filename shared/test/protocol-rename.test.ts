// The rename signature as an auditor in another language rebuilds it (docs/protocol.md, "Renaming"):
// the digest is SHA-256 of the fedit-bin-v1 map of four fields, written out byte by byte here; the
// signature verifies only for the participant's key, this federation, name and nonce, under
// 'fedit/rename/v1' and no other domain.

import test from 'ava';
import { createHash } from 'node:crypto';
import {
  DOMAINS,
  generateIdentity,
  renameDigest,
  signRename,
  verifyDigest,
  verifyRename,
} from '@fedit/shared';

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const utf8 = (s: string) => Buffer.from(s, 'utf8');
const key = (s: string) => Buffer.concat([u32(utf8(s).length), utf8(s)]);
const str = (s: string) => Buffer.concat([Buffer.from([0x04]), u32(utf8(s).length), utf8(s)]);
const bin = (b: Uint8Array) => Buffer.concat([Buffer.from([0x05]), u32(b.length), b]);

test('renameDigest is SHA-256 of the canonical map { displayName, federation, nonce, participant }', (t) => {
  const nonce = new Uint8Array(32).map((_, i) => i);
  const fields = { federation: 'fed-1', participant: 'ab'.repeat(16), displayName: 'Zoë K.', nonce };
  // Keys in ascending UTF-8 byte order: displayName < federation < nonce < participant.
  const encoding = Buffer.concat([
    Buffer.from([0x07]),
    u32(4),
    key('displayName'),
    str('Zoë K.'),
    key('federation'),
    str('fed-1'),
    key('nonce'),
    bin(nonce),
    key('participant'),
    str('ab'.repeat(16)),
  ]);
  const expected = createHash('sha256').update(encoding).digest('hex');
  t.is(Buffer.from(renameDigest(fields)).toString('hex'), expected);
});

test("a rename verifies for the participant's key, federation, name and nonce only", (t) => {
  const alice = generateIdentity();
  const request = signRename(alice, { federation: 'fed-1', participant: 'p1', displayName: 'Alice' });
  t.is(request.nonce.length, 32);
  const fields = { federation: 'fed-1', participant: 'p1', displayName: 'Alice', nonce: request.nonce };
  const pk = alice.sign.publicKey;
  t.true(verifyRename(pk, fields, request.signature));
  t.true(verifyDigest(pk, DOMAINS.rename, renameDigest(fields), request.signature));
  t.false(verifyDigest(pk, DOMAINS.enrol, renameDigest(fields), request.signature), 'another domain');
  t.false(verifyRename(generateIdentity().sign.publicKey, fields, request.signature), 'another key');
  t.false(verifyRename(pk, { ...fields, federation: 'fed-2' }, request.signature), 'another federation');
  t.false(verifyRename(pk, { ...fields, participant: 'p2' }, request.signature), 'another participant');
  t.false(verifyRename(pk, { ...fields, displayName: 'Mallory' }, request.signature), 'another name');
  t.false(verifyRename(pk, { ...fields, nonce: new Uint8Array(32) }, request.signature), 'another nonce');
  const again = signRename(alice, { federation: 'fed-1', participant: 'p1', displayName: 'Alice' });
  t.notDeepEqual(again.nonce, request.nonce, 'each request has a fresh nonce');
});
