// Connection authentication. The coordinator sends a fresh random nonce on every connection
// ('auth:hello'); the participant proves it holds an enrolled signing key by signing
//
//   digest = SHA-256(canonical({ federation, coordinator, nonce, participant }))
//
// under the domain 'fedit/auth/v1', where `coordinator` is the coordinator's signing public key
// as the participant's invite names it. A proof answers exactly one challenge: a recorded proof
// replayed on a later connection names the old nonce and fails, and a challenge accepts one
// answer only. Binding the coordinator's key means a proof made for one federation or
// coordinator is worthless to another that happens to use the same federation id.
import { randomBytes } from 'node:crypto';
import { assertBytes } from './bytes.ts';
import { binaryCanonicalDigest } from './digest.ts';
import { CryptoError } from './errors.ts';
import type { Identity } from './identity.ts';
import { DOMAINS, SIGN_PUBLIC_KEY_BYTES, signDigest, verifyDigest } from './sign.ts';

export const AUTH_NONCE_BYTES = 32;
/** How long a challenge may wait for its answer by default. */
export const AUTH_CHALLENGE_TTL_MS = 60_000;

/** What an auth proof is bound to: the federation, its coordinator and this connection's nonce. */
export interface AuthContext {
  federation: string;
  /** The coordinator's Ed25519 public key (32 bytes). */
  coordinator: Uint8Array;
  nonce: Uint8Array;
}

export interface AuthProof {
  /** The participant's Ed25519 public key (32 bytes). */
  participant: Uint8Array;
  signature: Uint8Array;
}

/** The digest a participant signs to answer `context`. */
export function authDigest(context: AuthContext, participant: Uint8Array): Uint8Array {
  assertBytes(context.coordinator, SIGN_PUBLIC_KEY_BYTES, 'coordinator');
  assertBytes(context.nonce, AUTH_NONCE_BYTES, 'nonce');
  assertBytes(participant, SIGN_PUBLIC_KEY_BYTES, 'participant');
  return binaryCanonicalDigest({
    federation: context.federation,
    coordinator: context.coordinator,
    nonce: context.nonce,
    participant,
  });
}

/** The participant's answer to the challenge described by `context`. */
export function proveAuth(identity: Identity, context: AuthContext): AuthProof {
  const participant = identity.sign.publicKey.slice();
  return {
    participant,
    signature: signDigest(identity.sign.secretKey, DOMAINS.auth, authDigest(context, participant)),
  };
}

/** True when `proof` is a valid answer to `context` (it says nothing about enrolment). */
export function verifyAuthProof(context: AuthContext, proof: AuthProof): boolean {
  return verifyDigest(
    proof.participant,
    DOMAINS.auth,
    authDigest(context, proof.participant),
    proof.signature,
  );
}

/**
 * One connection's challenge, held by the coordinator. It accepts a single answer within its
 * lifetime; `consume` hands out the context to verify against (an auth proof or an enrolment
 * signature), and throws if the challenge was already answered or has expired.
 */
export class AuthChallenge {
  readonly federation: string;
  readonly coordinator: Uint8Array;
  readonly nonce: Uint8Array;
  readonly expiresAt: number;
  #used = false;

  constructor(options: { federation: string; coordinator: Uint8Array; now?: number; ttlMs?: number }) {
    assertBytes(options.coordinator, SIGN_PUBLIC_KEY_BYTES, 'coordinator');
    this.federation = options.federation;
    this.coordinator = options.coordinator.slice();
    this.nonce = new Uint8Array(randomBytes(AUTH_NONCE_BYTES));
    this.expiresAt = (options.now ?? Date.now()) + (options.ttlMs ?? AUTH_CHALLENGE_TTL_MS);
  }

  /** Marks the challenge answered and returns what the answer must be bound to. */
  consume(now: number = Date.now()): AuthContext {
    if (this.#used) {
      throw new CryptoError(
        'CRYPTO_AUTH_CHALLENGE',
        'this connection already answered its authentication challenge; reconnect to get a new one',
        { field: 'nonce' },
      );
    }
    this.#used = true;
    if (now > this.expiresAt) {
      throw new CryptoError(
        'CRYPTO_AUTH_CHALLENGE',
        'the authentication challenge expired before it was answered; reconnect to get a new one',
        { field: 'nonce' },
      );
    }
    return { federation: this.federation, coordinator: this.coordinator, nonce: this.nonce };
  }

  /** Consumes the challenge and verifies `proof` against it; throws CRYPTO_AUTH_FAILED if invalid. */
  verify(proof: AuthProof, now: number = Date.now()): void {
    const context = this.consume(now);
    if (!verifyAuthProof(context, proof)) {
      throw new CryptoError(
        'CRYPTO_AUTH_FAILED',
        "auth:prove.signature does not verify for this connection's challenge: it was made for another nonce, federation or coordinator, or with another key",
        { field: 'signature' },
      );
    }
  }
}
