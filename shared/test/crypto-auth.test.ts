// Connection authentication (crypto/auth.ts): a signature over a fresh server nonce.
import test from 'ava';
import {
  AuthChallenge,
  authDigest,
  CryptoError,
  generateIdentity,
  proveAuth,
  verifyAuthProof,
  type AuthContext,
} from '@fedit/shared';

const coordinator = generateIdentity(new Uint8Array(32).fill(1));
const participant = generateIdentity(new Uint8Array(32).fill(2));
const federation = 'clinic-notes';

const challenge = (now = 1_000) =>
  new AuthChallenge({ federation, coordinator: coordinator.sign.publicKey, now });
const contextOf = (c: AuthChallenge): AuthContext => ({
  federation: c.federation,
  coordinator: c.coordinator,
  nonce: c.nonce,
});

test('a proof for the connection nonce verifies, once', (t) => {
  const c = challenge();
  t.is(c.nonce.byteLength, 32);
  const proof = proveAuth(participant, contextOf(c));
  t.deepEqual(proof.participant, participant.sign.publicKey);
  t.true(verifyAuthProof(contextOf(c), proof));
  t.notThrows(() => c.verify(proof, 2_000));
  const again = t.throws(() => c.verify(proof, 2_000), { instanceOf: CryptoError });
  t.is(again.code, 'CRYPTO_AUTH_CHALLENGE');
  t.regex(again.message, /already answered/);
});

test('a recorded proof replayed on a new connection fails', (t) => {
  const old = challenge();
  const proof = proveAuth(participant, contextOf(old));
  const fresh = challenge();
  t.notDeepEqual(fresh.nonce, old.nonce);
  const error = t.throws(() => fresh.verify(proof, 2_000), { instanceOf: CryptoError });
  t.is(error.code, 'CRYPTO_AUTH_FAILED');
  t.is(error.field, 'signature');
});

test('a proof is bound to the federation, the coordinator key and the participant key', (t) => {
  const context = contextOf(challenge());
  const proof = proveAuth(participant, context);
  t.false(verifyAuthProof({ ...context, federation: 'other' }, proof));
  t.false(verifyAuthProof({ ...context, coordinator: participant.sign.publicKey }, proof));
  t.false(verifyAuthProof(context, { ...proof, participant: coordinator.sign.publicKey }));
  const byOther = proveAuth(generateIdentity(), context);
  t.false(
    verifyAuthProof(context, { participant: participant.sign.publicKey, signature: byOther.signature }),
  );
  t.notDeepEqual(
    authDigest(context, participant.sign.publicKey),
    authDigest(context, coordinator.sign.publicKey),
  );
});

test('an expired challenge refuses even a valid proof, and cannot be retried', (t) => {
  const c = new AuthChallenge({ federation, coordinator: coordinator.sign.publicKey, now: 0, ttlMs: 1000 });
  const proof = proveAuth(participant, contextOf(c));
  const error = t.throws(() => c.verify(proof, 1001), { instanceOf: CryptoError });
  t.is(error.code, 'CRYPTO_AUTH_CHALLENGE');
  t.regex(error.message, /expired/);
  t.throws(() => c.verify(proof, 500), { code: 'CRYPTO_AUTH_CHALLENGE' });
});

test('a bad proof also uses up the challenge', (t) => {
  const c = challenge();
  const proof = proveAuth(participant, contextOf(c));
  t.throws(() => c.verify({ ...proof, signature: new Uint8Array(64) }, 2_000), {
    code: 'CRYPTO_AUTH_FAILED',
  });
  t.throws(() => c.verify(proof, 2_000), { code: 'CRYPTO_AUTH_CHALLENGE' });
});

test('wrong-length nonces and keys throw CRYPTO_LENGTH', (t) => {
  const context = contextOf(challenge());
  t.like(
    t.throws(() => authDigest({ ...context, nonce: new Uint8Array(16) }, participant.sign.publicKey), {
      instanceOf: CryptoError,
    }),
    {
      code: 'CRYPTO_LENGTH',
      field: 'nonce',
    },
  );
  t.like(
    t.throws(() => new AuthChallenge({ federation, coordinator: new Uint8Array(3) }), {
      instanceOf: CryptoError,
    }),
    {
      code: 'CRYPTO_LENGTH',
      field: 'coordinator',
    },
  );
});
