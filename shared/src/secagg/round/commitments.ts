// What a secure round's participants sign and commit to, fixed to the byte so an auditor re-derives
// each value from the log (participant ids are the 32-hex-digit strings of their enrol records):
//
//   graph seed         SHA-256(UTF-8("fedit/secagg/graph/v1") || the 32 bytes of the round-open
//                      record's hash), hex: fixed by a record the coordinator signed before anyone
//                      advertised, so it cannot pick a graph after seeing who took part
//   self-seed commit   SHA-256(UTF-8("fedit/secagg/self-seed/v1") || b_i), hex: a reconstructed b_i
//                      must match it, so a holder who adds a chosen offset to its share is caught
//   box nonce          the first 24 bytes of SHA-256(UTF-8("fedit/secagg/box/v1") || u64be(round)
//                      || u8 len(from) || from || u8 len(to) || to): one box per pair and round, so
//                      the nonce never repeats under one key pair
//   shares hash        SHA-256(UTF-8("fedit/secagg/shares/v1") || for each box, recipients in
//                      ascending order: u8 len(to) || to || box), hex
//   signed digests     SHA-256(canonical JSON (rounds/canonical.ts) of the object below), signed
//                      with the participant's enrolled Ed25519 key under its DOMAINS entry:
//                        advert  {federation, round, participant, encryptionKey, maskKey}  secaggAdvert
//                        shares  {federation, round, participant, selfSeedCommitment, sharesHash}
//                                                                                          secaggShares
//                        reveal  {federation, round, participant, self: {owner: share}, key:
//                                {owner: share}}                                          secaggReveal
//                        consistency  {federation, round, participant, unmaskHash}     secaggConsistency
//                                (unmaskHash: the hash of the secagg-unmask record it was shown)
//                      byte strings as lowercase hex, exactly as the records write them

import { createHash } from 'node:crypto';
import { compareUtf8 } from '../../aggregation/rule.ts';
import { DOMAINS, signDigest, verifyDigest } from '../../crypto/sign.ts';
import { canonicalBytes, type CanonicalObject } from '../../rounds/canonical.ts';
import { SecAggError } from '../secagg-error.ts';

const utf8 = new TextEncoder();
const GRAPH_DOMAIN = utf8.encode('fedit/secagg/graph/v1');
const SELF_SEED_DOMAIN = utf8.encode('fedit/secagg/self-seed/v1');
const BOX_DOMAIN = utf8.encode('fedit/secagg/box/v1');
const SHARES_DOMAIN = utf8.encode('fedit/secagg/shares/v1');

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
export const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));

function lengthPrefixed(id: string): Uint8Array {
  const bytes = utf8.encode(id);
  if (bytes.length > 255)
    throw new SecAggError('SECAGG_INPUT', `participant id ${id.slice(0, 40)}… is too long`);
  return Uint8Array.of(bytes.length, ...bytes);
}

/** The graph seed of the round opened by the record with hash `roundOpenHash` ("sha256:" + hex). */
export function graphSeedOf(roundOpenHash: string): string {
  const match = /^sha256:([0-9a-f]{64})$/.exec(roundOpenHash);
  if (!match) throw new SecAggError('SECAGG_INPUT', 'roundOpenHash must be "sha256:" + 64 hex digits');
  return createHash('sha256').update(GRAPH_DOMAIN).update(Buffer.from(match[1], 'hex')).digest('hex');
}

/** hex SHA-256("fedit/secagg/self-seed/v1" || b). */
export function selfSeedCommitment(selfSeed: Uint8Array): string {
  return createHash('sha256').update(SELF_SEED_DOMAIN).update(selfSeed).digest('hex');
}

/** The 24-byte nonce of the box `from` seals for `to` in `round`. */
export function boxNonce(round: number, from: string, to: string): Uint8Array {
  const header = new DataView(new ArrayBuffer(8));
  header.setBigUint64(0, BigInt(round));
  const h = createHash('sha256')
    .update(BOX_DOMAIN)
    .update(new Uint8Array(header.buffer))
    .update(lengthPrefixed(from))
    .update(lengthPrefixed(to));
  return new Uint8Array(h.digest().subarray(0, 24));
}

/** The shares hash over a participant's boxes (any order given; hashed in recipient order). */
export function sharesHashOf(boxes: readonly { to: string; box: Uint8Array }[]): string {
  const h = createHash('sha256').update(SHARES_DOMAIN);
  for (const { to, box } of [...boxes].sort((a, b) => compareUtf8(a.to, b.to)))
    h.update(lengthPrefixed(to)).update(box);
  return h.digest('hex');
}

/** Who signs, for which federation and round. */
export interface SignedContext {
  federation: string;
  round: number;
  participant: string;
}

export type SecaggSigned = 'advert' | 'shares' | 'reveal' | 'consistency';
const DOMAIN_OF = {
  advert: DOMAINS.secaggAdvert,
  shares: DOMAINS.secaggShares,
  reveal: DOMAINS.secaggReveal,
  consistency: DOMAINS.secaggConsistency,
} as const;

/** SHA-256 of the canonical JSON of the context and `fields` (see the header). */
export function secaggDigest(context: SignedContext, fields: CanonicalObject): Uint8Array {
  const { federation, round, participant } = context;
  const bytes = canonicalBytes({ ...fields, federation, round, participant });
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** The participant's signature (64 bytes) of `fields` as `what`. */
export function signSecagg(
  what: SecaggSigned,
  context: SignedContext,
  fields: CanonicalObject,
  identitySecretKey: Uint8Array,
): Uint8Array {
  return signDigest(identitySecretKey, DOMAIN_OF[what], secaggDigest(context, fields));
}

/** Whether `signature` is `signKey`'s signature of `fields` as `what`. */
export function verifySecagg(
  what: SecaggSigned,
  context: SignedContext,
  fields: CanonicalObject,
  signKey: Uint8Array,
  signature: Uint8Array,
): boolean {
  return verifyDigest(signKey, DOMAIN_OF[what], secaggDigest(context, fields), signature);
}

/** The signed form of a reveal: {self: {owner: hex}, key: {owner: hex}} as the record holds it. */
export function revealFields(
  self: readonly { owner: string; share: Uint8Array }[],
  key: readonly { owner: string; share: Uint8Array }[],
): { self: Record<string, string>; key: Record<string, string> } {
  const dict = (l: readonly { owner: string; share: Uint8Array }[]) =>
    Object.fromEntries(l.map(({ owner, share }) => [owner, hex(share)]));
  return { self: dict(self), key: dict(key) };
}
