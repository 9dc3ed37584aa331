// Ed25519 over domain-separated digests (crypto/sign.ts).
import test from 'ava';
import nacl from 'tweetnacl';
import {
  CryptoError,
  DOMAINS,
  fromHex,
  identityFromSecretKeys,
  sha256,
  signDigest,
  toHex,
  verifyDigest,
} from '@fedit/shared';

// RFC 8032 §7.1, TEST 1.
const RFC8032_SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const RFC8032_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const RFC8032_SIGNATURE =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
const GROUP_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;

const identity = identityFromSecretKeys(fromHex(RFC8032_SEED, 'seed', 32), new Uint8Array(32).fill(9));
const digest = sha256(new TextEncoder().encode('an update'));

test('the signing key pair and raw signatures match RFC 8032 test 1', (t) => {
  t.is(toHex(identity.sign.publicKey), RFC8032_PUBLIC);
  t.is(toHex(nacl.sign.detached(new Uint8Array(0), identity.sign.secretKey)), RFC8032_SIGNATURE);
});

test('a digest signed under a domain verifies under that domain only', (t) => {
  const signature = signDigest(identity.sign.secretKey, DOMAINS.envelope, digest);
  t.is(signature.byteLength, 64);
  t.true(verifyDigest(identity.sign.publicKey, DOMAINS.envelope, digest, signature));
  t.false(verifyDigest(identity.sign.publicKey, DOMAINS.auth, digest, signature));
  t.false(verifyDigest(identity.sign.publicKey, DOMAINS.envelope, sha256(digest), signature));
  // The digest itself is never what Ed25519 signs.
  t.false(nacl.sign.detached.verify(digest, signature, identity.sign.publicKey));
});

test('a signature by another key, or altered in any byte, does not verify', (t) => {
  const signature = signDigest(identity.sign.secretKey, DOMAINS.record, digest);
  const other = identityFromSecretKeys(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
  t.false(verifyDigest(other.sign.publicKey, DOMAINS.record, digest, signature));
  for (let i = 0; i < signature.byteLength; i++) {
    const altered = signature.slice();
    altered[i] ^= 0x01;
    t.false(verifyDigest(identity.sign.publicKey, DOMAINS.record, digest, altered), `byte ${i}`);
  }
  t.false(verifyDigest(identity.sign.publicKey, DOMAINS.record, digest, signature.subarray(0, 63)));
});

test('refuses the malleated signature (S + L) that tweetnacl itself accepts', (t) => {
  const signature = signDigest(identity.sign.secretKey, DOMAINS.envelope, digest);
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]);
  let malleated = s + GROUP_ORDER;
  const forged = signature.slice();
  for (let i = 32; i < 64; i++) {
    forged[i] = Number(malleated & 0xffn);
    malleated >>= 8n;
  }
  t.notDeepEqual(forged, signature);
  const tag = Buffer.from(DOMAINS.envelope);
  const message = sha256(Uint8Array.of(tag.byteLength), tag, digest);
  t.true(nacl.sign.detached.verify(message, forged, identity.sign.publicKey), 'tweetnacl accepts S + L');
  t.false(verifyDigest(identity.sign.publicKey, DOMAINS.envelope, digest, forged));
});

test('wrong-length keys and digests, and malformed domains, throw CryptoError naming them', (t) => {
  const signature = signDigest(identity.sign.secretKey, DOMAINS.auth, digest);
  t.like(
    t.throws(() => signDigest(identity.sign.secretKey.subarray(0, 32), DOMAINS.auth, digest), {
      instanceOf: CryptoError,
    }),
    { code: 'CRYPTO_LENGTH', field: 'secretKey' },
  );
  t.like(
    t.throws(() => verifyDigest(new Uint8Array(31), DOMAINS.auth, digest, signature), {
      instanceOf: CryptoError,
    }),
    { code: 'CRYPTO_LENGTH', field: 'publicKey' },
  );
  t.like(
    t.throws(() => signDigest(identity.sign.secretKey, DOMAINS.auth, digest.subarray(1)), {
      instanceOf: CryptoError,
    }),
    { code: 'CRYPTO_LENGTH', field: 'digest' },
  );
  for (const domain of ['fedit/Envelope/v1', 'other/envelope/v1', 'fedit/envelope', 'fedit//v1']) {
    t.like(
      t.throws(() => signDigest(identity.sign.secretKey, domain as never, digest), {
        instanceOf: CryptoError,
      }),
      { code: 'CRYPTO_DOMAIN' },
    );
  }
});
