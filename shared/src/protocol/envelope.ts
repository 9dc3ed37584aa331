// The update envelope: what a participant signs before sending an update, and what the
// coordinator checks before accepting a single byte of it.
//
//   digest    = SHA-256(canonical(envelope without `signature`))
//   signature = Ed25519 over the digest under 'fedit/envelope/v1' (crypto/sign.ts)
//
// The digest names the upload: it is the upload id (hex), the HKDF salt and AAD of every sealed
// chunk, and the key for replay detection. Never the signature: tweetnacl's Ed25519 verify
// accepts malleated signatures, so one envelope can carry many valid signature byte strings.
import { bytesEqual, toHex } from '../crypto/bytes.ts';
import { binaryCanonicalDigest } from '../crypto/digest.ts';
import type { Identity } from '../crypto/identity.ts';
import { DOMAINS, signDigest, verifyDigest } from '../crypto/sign.ts';
import { ProtocolError } from './errors.ts';
import type { HeldOutFigures } from './held-out-figures.ts';
import type { SignedEnvelope, UpdateEnvelope, UploadId } from './messages.ts';
import { validateEnvelope, validateUnsignedEnvelope } from './validate.ts';

/** SHA-256 of the canonical encoding of the envelope's fields (any `signature` is left out). */
export function envelopeDigest(envelope: UpdateEnvelope): Uint8Array {
  // Fields picked by name, so nothing but the protocol's fields can reach the digest.
  return binaryCanonicalDigest({
    version: envelope.version,
    federation: envelope.federation,
    round: envelope.round,
    participant: envelope.participant,
    globalAdapterHash: envelope.globalAdapterHash,
    exampleCount: envelope.exampleCount,
    tensorSchema: envelope.tensorSchema.map(({ name, shape, dtype }) => ({ name, shape, dtype })),
    payloadHash: envelope.payloadHash,
    payloadBytes: envelope.payloadBytes,
    chunkBytes: envelope.chunkBytes,
    chunkCount: envelope.chunkCount,
    createdAt: envelope.createdAt,
    // Left out when absent (undefined members are not encoded): older envelopes keep their digest.
    heldOut: envelope.heldOut && heldOutDigestFields(envelope.heldOut),
  });
}

/** The held-out figures' fields by name, so nothing else can reach the digest. */
function heldOutDigestFields({ examples, meanLossMicronats, exactMatches }: HeldOutFigures) {
  return { examples, meanLossMicronats, exactMatches };
}

/**
 * The envelope id, `sha256:` + hex of envelopeDigest: the upload id, and the `envelopeDigest` a
 * round record lists for a counted update (replay detection).
 */
export function envelopeId(envelope: UpdateEnvelope): UploadId {
  return `sha256:${toHex(envelopeDigest(envelope))}`;
}

/**
 * Validates `envelope` (ProtocolError on any field out of range) and signs it with `identity`,
 * whose signing key must be the envelope's `participant`.
 */
export function signEnvelope(envelope: UpdateEnvelope, identity: Identity): SignedEnvelope {
  const checked = validateUnsignedEnvelope(stripSignature(envelope));
  if (!bytesEqual(checked.participant, identity.sign.publicKey)) {
    throw new ProtocolError(
      'PROTOCOL_INCONSISTENT',
      'envelope.participant',
      "envelope.participant is not the signing identity's public key; an envelope is signed by the participant it names",
    );
  }
  return {
    ...checked,
    signature: signDigest(identity.sign.secretKey, DOMAINS.envelope, envelopeDigest(checked)),
  };
}

/**
 * Validates a signed envelope and verifies its signature against its own `participant` key.
 * Returns the envelope (fresh, protocol fields only), its digest and its id; throws ProtocolError
 * (PROTOCOL_SIGNATURE on a bad signature). Whether that participant is enrolled and selected for
 * the round, and whether the id was seen before, is the coordinator's to check.
 */
export function verifyEnvelope(value: unknown): {
  envelope: SignedEnvelope;
  digest: Uint8Array;
  id: UploadId;
} {
  const envelope = validateEnvelope(value);
  const digest = envelopeDigest(envelope);
  if (!verifyDigest(envelope.participant, DOMAINS.envelope, digest, envelope.signature)) {
    throw new ProtocolError(
      'PROTOCOL_SIGNATURE',
      'envelope.signature',
      'envelope.signature does not verify: the envelope was altered after signing, or signed by a key other than envelope.participant',
    );
  }
  return { envelope, digest, id: `sha256:${toHex(digest)}` };
}

function stripSignature(envelope: UpdateEnvelope): UpdateEnvelope {
  const copy = { ...envelope } as UpdateEnvelope & { signature?: unknown };
  delete copy.signature;
  return copy;
}
