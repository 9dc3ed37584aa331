// Participant and coordinator identities (crypto/identity.ts).
import test from 'ava';
import nacl from 'tweetnacl';
import {
  CryptoError,
  fingerprint,
  fromHex,
  generateIdentity,
  identityFromSecretKeys,
  parseIdentity,
  parsePublicIdentity,
  publicIdentity,
  serializeIdentity,
  serializePublicIdentity,
  toBase64url,
  toHex,
} from '@fedit/shared';

test('a random identity has consistent Ed25519 and X25519 key pairs', (t) => {
  const identity = generateIdentity();
  t.is(identity.sign.publicKey.byteLength, 32);
  t.is(identity.sign.secretKey.byteLength, 64);
  t.deepEqual(identity.sign.secretKey.subarray(32), identity.sign.publicKey);
  t.deepEqual(nacl.scalarMult.base(identity.box.secretKey), identity.box.publicKey);
  t.notDeepEqual(generateIdentity().sign.publicKey, identity.sign.publicKey);
});

test('the same seed gives the same identity; sign and box keys are independent', (t) => {
  const seed = new Uint8Array(32).fill(7);
  const a = generateIdentity(seed);
  const b = generateIdentity(seed);
  t.deepEqual(a, b);
  t.notDeepEqual(a.sign.secretKey.subarray(0, 32), a.box.secretKey);
  t.notDeepEqual(generateIdentity(new Uint8Array(32).fill(8)).sign.publicKey, a.sign.publicKey);
  t.like(
    t.throws(() => generateIdentity(new Uint8Array(16)), { instanceOf: CryptoError }),
    { code: 'CRYPTO_LENGTH', field: 'seed' },
  );
});

test('box keys match RFC 7748 §6.1 (X25519)', (t) => {
  const alice = identityFromSecretKeys(
    new Uint8Array(32),
    fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'a', 32),
  );
  const bob = identityFromSecretKeys(
    new Uint8Array(32),
    fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb', 'b', 32),
  );
  t.is(toHex(alice.box.publicKey), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  t.is(toHex(bob.box.publicKey), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  t.is(
    toHex(nacl.scalarMult(alice.box.secretKey, bob.box.publicKey)),
    '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
  );
});

test('serialises to JSON-safe base64url and parses back, from an object or from JSON text', (t) => {
  const identity = generateIdentity();
  const serialized = serializeIdentity(identity);
  t.is(serialized.version, 1);
  t.regex(serialized.sign.secretKey, /^[A-Za-z0-9_-]{43}$/);
  t.deepEqual(parseIdentity(serialized), identity);
  t.deepEqual(parseIdentity(JSON.stringify(serialized)), identity);
});

test('refuses a stored identity whose public key does not match its secret key', (t) => {
  const serialized = serializeIdentity(generateIdentity());
  const other = serializeIdentity(generateIdentity());
  const error = t.throws(
    () => parseIdentity({ ...serialized, box: { ...serialized.box, publicKey: other.box.publicKey } }),
    {
      instanceOf: CryptoError,
    },
  );
  t.is(error.code, 'CRYPTO_IDENTITY');
  t.is(error.field, 'identity.box.publicKey');
  t.regex(error.message, /identity\.box\.publicKey does not belong/);
});

test('refuses malformed identity files, naming the field', (t) => {
  const serialized = serializeIdentity(generateIdentity());
  const cases: [unknown, string, string][] = [
    ['{not json', 'CRYPTO_IDENTITY', 'identity'],
    [[], 'CRYPTO_IDENTITY', 'identity'],
    [{ ...serialized, version: 2 }, 'CRYPTO_IDENTITY', 'identity.version'],
    [{ ...serialized, sign: 'x' }, 'CRYPTO_IDENTITY', 'identity.sign'],
    [
      { ...serialized, sign: { ...serialized.sign, secretKey: serialized.sign.secretKey + '=' } },
      'CRYPTO_ENCODING',
      'identity.sign.secretKey',
    ],
    [
      { ...serialized, sign: { ...serialized.sign, secretKey: serialized.sign.secretKey.slice(2) } },
      'CRYPTO_ENCODING',
      'identity.sign.secretKey',
    ],
    [
      { ...serialized, box: { ...serialized.box, secretKey: 42 } },
      'CRYPTO_ENCODING',
      'identity.box.secretKey',
    ],
  ];
  for (const [input, code, field] of cases) {
    const error = t.throws(() => parseIdentity(input), { instanceOf: CryptoError });
    t.is<string, string>(error.code, code, field);
    t.is(error.field, field);
  }
});

test('base64url decoding is strict: one text per key', (t) => {
  const serialized = serializeIdentity(generateIdentity());
  const text = serialized.sign.publicKey;
  // The last character of 43 carries 2 unused bits; setting them gives a different text, same bytes under Buffer.
  const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(text[42]);
  const sloppy =
    text.slice(0, 42) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last | 1];
  if (sloppy !== text) {
    t.like(
      t.throws(() => parsePublicIdentity({ sign: sloppy, box: serialized.box.publicKey }), {
        instanceOf: CryptoError,
      }),
      {
        code: 'CRYPTO_ENCODING',
        field: 'publicIdentity.sign',
      },
    );
  }
  t.like(
    t.throws(() => parsePublicIdentity({ sign: text.replace(/.$/, '+'), box: serialized.box.publicKey }), {
      instanceOf: CryptoError,
    }),
    {
      code: 'CRYPTO_ENCODING',
    },
  );
});

test('public identities round-trip and fingerprints are short, stable and bind both keys', (t) => {
  const identity = generateIdentity(new Uint8Array(32).fill(3));
  const pub = publicIdentity(identity);
  t.deepEqual(parsePublicIdentity(serializePublicIdentity(pub)), pub);
  const id = fingerprint(pub);
  t.regex(id, /^[0-9a-f]{32}$/);
  t.is(fingerprint(publicIdentity(generateIdentity(new Uint8Array(32).fill(3)))), id);
  t.not(fingerprint({ sign: pub.sign, box: generateIdentity().box.publicKey }), id);
  t.not(fingerprint({ sign: pub.box, box: pub.sign }), id);
  t.is(toBase64url(pub.sign), serializePublicIdentity(pub).sign);
});
