// The shapes of a secure round's parts (secagg/round/: the protocol and what each field commits
// to), for the secagg-keys, secagg-shares, secagg-unmask and secagg-consistency bodies and
// round-closed's `secure` section that record-shape.ts declares.

import { MAX_GRAPH_PARTICIPANTS } from '../secagg/graph.ts';
import { SEED_BYTES } from '../secagg/prg.ts';
import { SHARE_BYTES } from '../secagg/shamir.ts';
import { dictionary, list, type Schema } from '../schema/schema.ts';
import {
  NOT_AN_OBJECT,
  hash,
  hexBytes,
  isNot,
  name,
  part,
  positive,
  recordedEnvelope,
  signature,
} from './record-leaves.ts';

/** A list of at most one entry per participant a secure round's graph can hold. */
export const perParticipant = <T>(item: Schema<T>) =>
  list(item, 0, MAX_GRAPH_PARTICIPANTS, { notList: 'is not an array' });
export const x25519Key = hexBytes(SEED_BYTES, 'an X25519 public key');
export const sha256Hex = hexBytes(32, 'a SHA-256 digest');
export const shareHex = hexBytes(SHARE_BYTES, 'a Shamir share');

/** The graph a secure round masks over: every party derives it from these and U1. */
export const secaggGraph = part({
  kind: isNot<'complete' | 'secagg+'>((v) => v === 'complete' || v === 'secagg+', '"complete" or "secagg+"'),
  /** Each participant's number of neighbours (n − 1 for the complete graph). */
  degree: positive,
  /** hex SHA-256("fedit/secagg/graph/v1" || the round-open record's hash, as 32 bytes). */
  seed: sha256Hex,
});

/** A participant's two X25519 keys for the round, signed with its enrolled Ed25519 key. */
export const secaggAdvert = part({
  participant: name,
  /** For the boxes that carry its shares. */
  encryptionKey: x25519Key,
  /** For the pair masks (s_ij); its secret key is what the key shares reconstruct. */
  maskKey: x25519Key,
  signature,
});

export const secaggShared = part({
  participant: name,
  /** hex SHA-256("fedit/secagg/self-seed/v1" || b_i): checked against the reconstructed b_i. */
  selfSeedCommitment: sha256Hex,
  /** hex SHA-256 over its boxes in recipient order (secagg/round/commitments.ts). */
  sharesHash: sha256Hex,
  signature,
});

/** A survivor's stored masked input, named as an update is (blob hash, signed envelope). */
export const secaggMaskedInput = part({
  participant: name,
  envelopeDigest: hash,
  /** The blob store's hash of the masked input's tensors (secagg/masked-input.ts). */
  hash,
  envelope: recordedEnvelope,
});

/** What one holder revealed, by owner: shares of survivors' b_i (self), of the dropped's mask keys (key). */
export const secaggReveal = part({
  participant: name,
  self: dictionary(shareHex, NOT_AN_OBJECT),
  key: dictionary(shareHex, NOT_AN_OBJECT),
  signature,
});

/** round-closed's section for a secure round: what the audit unmasks the sum from. */
export const secureSection = part({
  /** U3 in participant order: the survivors whose masked inputs were summed. */
  maskedInputs: perParticipant(secaggMaskedInput),
  /** The reveals the coordinator unmasked with, in participant order. */
  reveals: perParticipant(secaggReveal),
  /** Σ w_i of the survivors, as the unmasked sum's last word says. */
  totalWeight: positive,
});
