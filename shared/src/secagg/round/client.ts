// A participant's side of one secure round (Bonawitz et al. 2017 with the SecAgg+ graph), pure and
// in memory: the wire calls these in order as the coordinator's signed records arrive, and sends
// what they return. The ephemeral secrets (two X25519 key pairs and the self seed b_i) live only in
// this object; nothing here writes them anywhere.
//
//   advertise()      its encryption and mask public keys, signed
//   onKeys(keys)     the secagg-keys record: its graph and threshold are the settings' (plan.ts), it
//                    lists only selected participants and this participant's own keys, and each
//                    neighbour's advert is signed by its enrolled key (the ones it uses; the audit
//                    checks all, so a participant's work grows with its degree, not with n); then b_i and the mask secret are split t-of-|H_i|
//                    over the holders and each holder's pair sealed to it (nacl.box, nonce of
//                    commitments.ts); returns the boxes with the commitment to b_i, signed
//   onInbox(boxes, shares)  the secagg-shares record (U2 ⊆ U1, sorted, each neighbour's entry
//                    signed by its participant, this participant's own entry as it sent it), then the boxes
//                    addressed to it: from U2 neighbours only, once each, opened under the sender's
//                    advertised key, each share at this holder's evaluation point
//   mask(delta, w)   x = encodeUpdate(delta, w) (fixed-point.ts), y = x + PRG(b_i) + pair masks with
//                    its U2 neighbours only; refused (SECAGG_EXPOSED) when it has none
//   onUnmask(rec)    the secagg-unmask record: survivors and dropped partition U2, itself among the
//                    survivors, at least t survivors, none exposed (unmask.ts); returns its
//                    signature of that record (the one it signs this round), nothing revealed yet
//   onConsistency(rec)  the secagg-consistency record: it signs this participant's own
//                    secagg-unmask record and holds enough valid survivors' signatures of it for
//                    every owner whose shares this holder reveals (consistency.ts); only then the
//                    reveal. The ShareHolder also refuses a second request that asks for the other
//                    kind of a participant's share (SECAGG_REFUSED), so a coordinator lying about who
//                    dropped learns nothing more

import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { compareUtf8 } from '../../aggregation/rule.ts';
import type { TensorValues } from '../../aggregation/schema.ts';
import type { FederationConfig } from '../../federation/config.ts';
import { secureFixedPoint, type SecureAggregationSettings } from '../../federation/secure-aggregation.ts';
import type {
  AdvertisePayload,
  ConsistencyPayload,
  InboxCiphertext,
  RevealPayload,
  SharesPayload,
} from '../../protocol/secagg-messages.ts';
import type { RoundRecordOf } from '../../rounds/record.ts';
import { encodeUpdate, type FixedPointConfig } from '../fixed-point.ts';
import { applyMasks, ShareHolder, type HeldShares } from '../masking.ts';
import { SEED_BYTES } from '../prg.ts';
import { SecAggError } from '../secagg-error.ts';
import { decodeShare, encodeShare, SHARE_BYTES, splitSecret } from '../shamir.ts';
import {
  boxNonce,
  hex,
  revealFields,
  selfSeedCommitment,
  sharesHashOf,
  signSecagg,
  unhex,
  verifySecagg,
  type SignedContext,
} from './commitments.ts';
import { flattenDelta } from './flatten.ts';
import { holdersOf, planOf, type SecureRoundPlan } from './plan.ts';
import { checkUnmaskable } from './unmask.ts';
import { judgeConsistency } from './consistency.ts';

/** The enrolled Ed25519 key of a participant (undefined: not enrolled). */
export type SigningKeys = (participant: string) => Uint8Array | undefined;

export interface SecureRoundClientOptions {
  federation: string;
  round: number;
  participant: string;
  /** The participant's Ed25519 secret key (tweetnacl, 64 bytes). */
  identitySecretKey: Uint8Array;
  /** The federation's config, with its secureAggregation section. */
  config: FederationConfig;
  /** The round's round-open record (verified by the caller): its hash seeds the graph. */
  roundOpen: RoundRecordOf<'round-open'>;
}

type Phase = 'advertise' | 'keys' | 'inbox' | 'mask' | 'unmask' | 'consistency' | 'done';

export class SecureRoundClient {
  readonly #context: SignedContext;
  readonly #identity: Uint8Array;
  readonly #settings: SecureAggregationSettings;
  readonly #fixedPoint: FixedPointConfig;
  readonly #roundOpen: RoundRecordOf<'round-open'>;
  readonly #encryption = nacl.box.keyPair();
  readonly #mask = nacl.box.keyPair();
  readonly #selfSeed = new Uint8Array(randomBytes(SEED_BYTES));
  #phase: Phase = 'advertise';
  #plan?: SecureRoundPlan;
  #id = 0;
  #signingKeys?: SigningKeys;
  #ownShares?: HeldShares;
  #shared?: ReadonlyMap<number, string>;
  #holder?: ShareHolder;
  #unmask?: { hash: string; survivors: number[]; dropped: number[] };

  constructor(options: SecureRoundClientOptions) {
    const { federation, round, participant, identitySecretKey, config, roundOpen } = options;
    const secure = config.secureAggregation;
    if (!secure || config.aggregation.weightCap === undefined)
      throw new SecAggError(
        'SECAGG_CONFIG',
        'the federation config has no secureAggregation section (or no weightCap)',
      );
    if (roundOpen.kind !== 'round-open' || roundOpen.round !== round || roundOpen.federation !== federation)
      throw new SecAggError(
        'SECAGG_INPUT',
        `roundOpen is not round ${round}'s round-open record of ${federation}`,
      );
    this.#context = { federation, round, participant };
    this.#identity = identitySecretKey;
    this.#settings = secure;
    this.#fixedPoint = secureFixedPoint(secure, config.aggregation.weightCap);
    this.#roundOpen = roundOpen;
  }

  #step(expected: Phase, what: string): void {
    if (this.#phase !== expected)
      throw new SecAggError(
        'SECAGG_PHASE',
        `${what} comes in phase ${expected}, but the round is in phase ${this.#phase}`,
      );
  }

  #record<K extends 'secagg-keys' | 'secagg-shares' | 'secagg-unmask' | 'secagg-consistency'>(
    record: RoundRecordOf<K>,
    kind: K,
  ): void {
    const { federation, round } = this.#context;
    if (record.kind !== kind || record.federation !== federation || record.round !== round)
      throw new SecAggError(
        'SECAGG_REFUSED',
        `expected round ${round}'s ${kind} record of ${federation}, got ${record.kind} of round ${record.round}`,
      );
  }

  /** This participant's advert: its two public keys, signed. */
  advertise(): AdvertisePayload {
    this.#step('advertise', 'advertise');
    const encryptionKey = this.#encryption.publicKey;
    const maskKey = this.#mask.publicKey;
    const fields = { encryptionKey: hex(encryptionKey), maskKey: hex(maskKey) };
    const signature = signSecagg('advert', this.#context, fields, this.#identity);
    this.#phase = 'keys';
    return { round: this.#context.round, encryptionKey, maskKey, signature };
  }

  /** Checks the secagg-keys record (see the header) and returns the boxes of shares, signed. */
  onKeys(record: RoundRecordOf<'secagg-keys'>, signingKeys: SigningKeys): SharesPayload {
    this.#step('keys', 'the secagg-keys record');
    this.#record(record, 'secagg-keys');
    const plan = planOf(record.body, this.#settings, this.#roundOpen.hash);
    const me = this.#context.participant;
    const id = plan.idOf.get(me);
    if (
      id === undefined ||
      !nacl.verify(plan.encryptionKeys.get(id)!, this.#encryption.publicKey) ||
      !nacl.verify(plan.maskKeys.get(id)!, this.#mask.publicKey)
    )
      throw new SecAggError(
        'SECAGG_REFUSED',
        `the secagg-keys record does not list ${me} with the keys it advertised`,
      );
    const selected = new Set(this.#roundOpen.body.selection.selected);
    const neighbours = new Set(plan.graph.get(id));
    record.body.advertised.forEach((advert, q) => {
      const who = advert.participant;
      if (!selected.has(who))
        throw new SecAggError(
          'SECAGG_STRANGER',
          `the secagg-keys record lists ${who}, whom the round did not select`,
        );
      // Only the keys this participant uses (its neighbours') are checked here, so its work grows
      // with its degree, not with n; the audit checks every advert (rules-secagg.ts).
      if (!neighbours.has(q + 1)) return;
      const key = signingKeys(who);
      const fields = { encryptionKey: advert.encryptionKey, maskKey: advert.maskKey };
      if (
        !key ||
        !verifySecagg('advert', { ...this.#context, participant: who }, fields, key, unhex(advert.signature))
      )
        throw new SecAggError('SECAGG_SIGNATURE', `the advert of ${who} is not signed by its enrolled key`);
    });
    this.#plan = plan;
    this.#id = id;
    this.#signingKeys = signingKeys;
    const holders = holdersOf(plan, id);
    const self = splitSecret(this.#selfSeed, plan.threshold, holders.length);
    const key = splitSecret(this.#mask.secretKey, plan.threshold, holders.length);
    const ciphertexts: SharesPayload['ciphertexts'] = [];
    holders.forEach((h, q) => {
      const pair = { self: encodeShare(self[q]), key: encodeShare(key[q]) };
      if (h === id) {
        this.#ownShares = pair;
        return;
      }
      const to = plan.participants[h - 1];
      const message = new Uint8Array(2 * SHARE_BYTES);
      message.set(pair.self, 0);
      message.set(pair.key, SHARE_BYTES);
      const nonce = boxNonce(this.#context.round, me, to);
      ciphertexts.push({
        to,
        box: nacl.box(message, nonce, plan.encryptionKeys.get(h)!, this.#encryption.secretKey),
      });
    });
    ciphertexts.sort((a, b) => compareUtf8(a.to, b.to));
    const commitment = selfSeedCommitment(this.#selfSeed);
    const fields = { selfSeedCommitment: commitment, sharesHash: sharesHashOf(ciphertexts) };
    this.#phase = 'inbox';
    return {
      round: this.#context.round,
      selfSeedCommitment: unhex(commitment),
      ciphertexts,
      signature: signSecagg('shares', this.#context, fields, this.#identity),
    };
  }

  /** Checks the secagg-shares record, opens the boxes addressed to this participant (see the header). */
  onInbox(ciphertexts: readonly InboxCiphertext[], record: RoundRecordOf<'secagg-shares'>): void {
    this.#step('inbox', 'the inbox');
    this.#record(record, 'secagg-shares');
    const plan = this.#plan!;
    const shared = new Map<number, string>();
    let previous: string | undefined;
    for (const entry of record.body.shared) {
      const who = entry.participant;
      const id = plan.idOf.get(who);
      if (id === undefined)
        throw new SecAggError(
          'SECAGG_STRANGER',
          `the secagg-shares record lists ${who}, who advertised no keys`,
        );
      if (previous !== undefined && compareUtf8(previous, who) >= 0)
        throw new SecAggError(
          'SECAGG_REFUSED',
          `the secagg-shares record lists ${who} after ${previous}: sorted, once each`,
        );
      previous = who;
      shared.set(id, entry.selfSeedCommitment);
      // As for the adverts: the entries of the neighbours whose boxes it opens, and its own.
      if (id !== this.#id && !plan.graph.get(this.#id)!.includes(id)) continue;
      const fields = { selfSeedCommitment: entry.selfSeedCommitment, sharesHash: entry.sharesHash };
      const key = this.#signingKeys!(who);
      if (
        !key ||
        !verifySecagg('shares', { ...this.#context, participant: who }, fields, key, unhex(entry.signature))
      )
        throw new SecAggError(
          'SECAGG_SIGNATURE',
          `the shares entry of ${who} is not signed by its enrolled key`,
        );
    }
    if (shared.get(this.#id) !== selfSeedCommitment(this.#selfSeed))
      throw new SecAggError(
        'SECAGG_REFUSED',
        `the secagg-shares record does not hold ${this.#context.participant}'s commitment as it sent it`,
      );
    const held = new Map<number, HeldShares>([[this.#id, this.#ownShares!]]);
    const neighbours = new Set(plan.graph.get(this.#id));
    for (const { from, box } of ciphertexts) {
      const sender = plan.idOf.get(from);
      if (sender === undefined || !shared.has(sender) || !neighbours.has(sender))
        throw new SecAggError('SECAGG_STRANGER', `a box comes from ${from}, not a neighbour that shared`);
      if (held.has(sender)) throw new SecAggError('SECAGG_REPEAT', `a second box comes from ${from}`);
      held.set(sender, this.#open(sender, from, box));
    }
    this.#shared = shared;
    this.#holder = new ShareHolder(this.#id, held, plan.threshold);
    this.#phase = 'mask';
  }

  #open(sender: number, from: string, box: Uint8Array): HeldShares {
    const plan = this.#plan!;
    const nonce = boxNonce(this.#context.round, from, this.#context.participant);
    const opened = nacl.box.open(box, nonce, plan.encryptionKeys.get(sender)!, this.#encryption.secretKey);
    if (!opened || opened.length !== 2 * SHARE_BYTES)
      throw new SecAggError('SECAGG_INPUT', `the box from ${from} does not open under its advertised key`);
    const pair = { self: opened.slice(0, SHARE_BYTES), key: opened.slice(SHARE_BYTES) };
    const x = holdersOf(plan, sender).indexOf(this.#id) + 1;
    if (decodeShare(pair.self).x !== x || decodeShare(pair.key).x !== x)
      throw new SecAggError(
        'SECAGG_INPUT',
        `the shares from ${from} are not at this holder's evaluation point ${x}`,
      );
    return pair;
  }

  /** y_i for `delta` (trained − global, in schema order) and the capped weight (see the header). */
  mask(delta: TensorValues, weight: number): Uint32Array {
    this.#step('mask', 'mask');
    const plan = this.#plan!;
    const shared = this.#shared!;
    const peers = (plan.graph.get(this.#id) ?? [])
      .filter((j) => shared.has(j))
      .map((j) => [j, plan.maskKeys.get(j)!] as const);
    if (peers.length === 0)
      throw new SecAggError(
        'SECAGG_EXPOSED',
        'no neighbour of this participant shared its keys: its masked input would be exposed at unmasking',
      );
    const x = encodeUpdate(
      flattenDelta(delta),
      weight,
      this.#fixedPoint,
      new Uint8Array(randomBytes(SEED_BYTES)),
    );
    const p = { id: this.#id, secretKey: this.#mask.secretKey, selfSeed: this.#selfSeed };
    const y = applyMasks(x, p, peers, this.#context.round);
    this.#phase = 'unmask';
    return y;
  }

  /** Checks the secagg-unmask record and signs it: the one this participant signs this round. */
  onUnmask(record: RoundRecordOf<'secagg-unmask'>): ConsistencyPayload {
    // One secagg-unmask record signed per round: what makes two lists unable to both gather a quorum.
    if (this.#unmask && this.#unmask.hash !== record.hash)
      throw new SecAggError(
        'SECAGG_REFUSED',
        `${this.#context.participant} already signed another secagg-unmask record for round ${this.#context.round} (${this.#unmask.hash}): the coordinator shows different records`,
      );
    this.#step('unmask', 'the secagg-unmask record');
    this.#record(record, 'secagg-unmask');
    const plan = this.#plan!;
    const shared = this.#shared!;
    const ids = (list: readonly string[], field: string) =>
      list.map((who, k) => {
        const id = plan.idOf.get(who);
        if (id === undefined || !shared.has(id))
          throw new SecAggError(
            'SECAGG_REFUSED',
            `${field}[${k}] (${who}) did not share its keys this round`,
          );
        if (k > 0 && compareUtf8(list[k - 1], who) >= 0)
          throw new SecAggError('SECAGG_REFUSED', `${field} is not sorted, once each, at ${who}`);
        return id;
      });
    const survivors = ids(record.body.survivors, 'survivors');
    const dropped = ids(record.body.dropped, 'dropped');
    if (
      survivors.length + dropped.length !== shared.size ||
      new Set([...survivors, ...dropped]).size !== shared.size
    )
      throw new SecAggError(
        'SECAGG_REFUSED',
        'survivors and dropped do not split the participants that shared, each once',
      );
    if (!survivors.includes(this.#id))
      throw new SecAggError(
        'SECAGG_REFUSED',
        `${this.#context.participant} sent its masked input but is not listed among the survivors`,
      );
    checkUnmaskable(plan, shared, survivors);
    this.#unmask = { hash: record.hash, survivors, dropped };
    this.#phase = 'consistency';
    const fields = { unmaskHash: record.hash };
    return {
      round: this.#context.round,
      signature: signSecagg('consistency', this.#context, fields, this.#identity),
    };
  }

  /** This holder's reveal, once the secagg-consistency record passes (see the header), signed. */
  onConsistency(record: RoundRecordOf<'secagg-consistency'>): RevealPayload {
    this.#step('consistency', 'the secagg-consistency record');
    this.#record(record, 'secagg-consistency');
    const plan = this.#plan!;
    const { hash, survivors, dropped } = this.#unmask!;
    if (record.body.unmaskHash !== hash)
      throw new SecAggError(
        'SECAGG_REFUSED',
        `the secagg-consistency record signs ${record.body.unmaskHash}, not the secagg-unmask record ${hash} this participant was shown: the coordinator shows different records`,
      );
    const { problems } = judgeConsistency({
      plan,
      federation: this.#context.federation,
      round: this.#context.round,
      unmaskHash: hash,
      survivors,
      dropped,
      signatures: record.body.signatures,
      signingKey: this.#signingKeys!,
      // The owners it holds shares of that the record names (one that never shared has none revealed).
      owners: holdersOf(plan, this.#id).filter((j) => survivors.includes(j) || dropped.includes(j)),
    });
    if (problems.length > 0)
      throw new SecAggError(
        'SECAGG_REFUSED',
        `the secagg-consistency record does not let this participant reveal: ${problems[0].message}`,
      );
    this.#phase = 'done';
    const reveal = this.#holder!.reveal(survivors, dropped);
    const list = (m: ReadonlyMap<number, Uint8Array>) =>
      [...m]
        .sort((a, b) => a[0] - b[0])
        .map(([owner, share]) => ({ owner: plan.participants[owner - 1], share }));
    const self = list(reveal.self);
    const key = list(reveal.key);
    const fields = revealFields(self, key);
    return {
      round: this.#context.round,
      self,
      key,
      signature: signSecagg('reveal', this.#context, fields, this.#identity),
    };
  }
}
