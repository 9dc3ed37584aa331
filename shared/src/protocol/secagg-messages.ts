// A secure round's messages (shared/src/secagg/round/ says what each field means and how it is
// signed). Declared like every message, every list and byte string bounded before anything is
// allocated for its items; the engines (SecureRoundClient, SecureRoundCollector) then hold each
// payload to the round (who may send it, in which phase, whose signature).
//
//   client -> coordinator (acked with a result or an error code)
//     'secagg:advertise'  {round, encryptionKey, maskKey, signature}
//     'secagg:shares'     {round, selfSeedCommitment, ciphertexts: [{to, box}], signature}
//     'secagg:inbox'      {round} -> {ciphertexts: [{from, box}]}
//     'secagg:consistency' {round, signature}: its signature of the secagg-unmask record it was shown
//     'secagg:reveal'     {round, self: [{owner, share}], key: [{owner, share}], signature}
//   coordinator -> client
//     'secagg:phase'      {record}: the secagg-keys, secagg-shares, secagg-unmask or
//                         secagg-consistency record, signed

import { bytes, int, isRecord, list, object, predicate, type Infer } from '../schema/schema.ts';
import { SEED_BYTES } from '../secagg/prg.ts';
import { MAX_SHARES, SHARE_BYTES } from '../secagg/shamir.ts';
import { participantId, signature } from './fields.ts';
import { MAX_ROUND } from './limits.ts';

/** nacl.box's authenticator: a box is this much longer than what it seals. */
export const BOX_OVERHEAD_BYTES = 16;
/** A box of one holder's share pair: self share ‖ key share (68 bytes each), sealed. */
export const SHARE_BOX_BYTES = 2 * SHARE_BYTES + BOX_OVERHEAD_BYTES;
/** The most boxes one message lists: one per share holder, whom Shamir's x numbers cap. */
export const MAX_SECAGG_PEERS = MAX_SHARES;

const round = int(1, MAX_ROUND);
const key = bytes(SEED_BYTES);
const peers = <T>(item: Parameters<typeof list<T>>[0]) => list(item, 0, MAX_SECAGG_PEERS);

export const secaggAdvertise = object({ round, encryptionKey: key, maskKey: key, signature });
export type AdvertisePayload = Infer<typeof secaggAdvertise>;

export const secaggShares = object({
  round,
  selfSeedCommitment: bytes(32),
  ciphertexts: peers(object({ to: participantId, box: bytes(SHARE_BOX_BYTES) })),
  signature,
});
export type SharesPayload = Infer<typeof secaggShares>;

export const secaggInboxRequest = object({ round });
export type InboxRequest = Infer<typeof secaggInboxRequest>;

export const secaggInbox = object({
  ciphertexts: peers(object({ from: participantId, box: bytes(SHARE_BOX_BYTES) })),
});
export type InboxPayload = Infer<typeof secaggInbox>;
export type InboxCiphertext = InboxPayload['ciphertexts'][number];

/** Fixed size: nothing to bound but the signature (64 bytes). */
export const secaggConsistency = object({ round, signature });
export type ConsistencyPayload = Infer<typeof secaggConsistency>;

const revealedShares = peers(object({ owner: participantId, share: bytes(SHARE_BYTES) }));
export const secaggReveal = object({ round, self: revealedShares, key: revealedShares, signature });
export type RevealPayload = Infer<typeof secaggReveal>;

/** The record itself is checked by verifyAnnouncedRecord (rounds/announcement.ts). */
export const secaggPhase = object({
  record: predicate<object>(isRecord, 'must be an object (a round record)'),
});
export type PhasePayload = Infer<typeof secaggPhase>;

// Validated through messages.ts's event tables (CLIENT_PAYLOAD_VALIDATORS, SERVER_PAYLOAD_VALIDATORS):
// importing validate.ts here would close an import cycle messages.ts -> here -> validate.ts.
