// The coordinator's side of one secure round, pure and in memory: the wire feeds it what
// participants send and writes the bodies it returns as signed records, in this order:
//
//   advertise  addAdvertise from selected participants -> keysBody(): U1 sorted, the graph and
//              threshold of plan.ts (fewer than 2: SECAGG_ABORT)
//   shares     addShares from U1, one box for each of its other holders -> sharesBody(): U2
//              (fewer than t: SECAGG_ABORT); inbox(p): the boxes addressed to p from U2
//   masked     addMasked from U2 -> unmaskBody(): U3 and U2 \ U3 (fewer than t, or a survivor
//              that would be exposed: SECAGG_ABORT / SECAGG_EXPOSED, the round aborts with nothing
//              revealed)
//   consistency  unmaskRecorded(hash of the written secagg-unmask record) -> addConsistency from
//              U3 (each its signature of that record) -> consistencyBody(): the signatures, sorted
//              (short of consistency.ts's quorums: SECAGG_ABORT, nothing revealed)
//   reveal     addReveal from U3 -> canUnmask() once every needed secret has t shares ->
//              unmask(masked): the sum (unmask.ts), its total weight and round-closed's `secure`
//
// Every add* checks the payload's round, that the sender belongs to the phase, has not sent it
// before and signed it with its enrolled key, and throws SecAggError naming the field otherwise
// (SECAGG_PHASE, SECAGG_STRANGER, SECAGG_REPEAT, SECAGG_SIGNATURE, SECAGG_INPUT). The collector
// never sees a share in the clear except those revealed for unmasking.

import { compareUtf8 } from '../../aggregation/rule.ts';
import type { FederationConfig } from '../../federation/config.ts';
import { secureFixedPoint, type SecureAggregationSettings } from '../../federation/secure-aggregation.ts';
import type {
  AdvertisePayload,
  ConsistencyPayload,
  InboxCiphertext,
  RevealPayload,
  SharesPayload,
} from '../../protocol/secagg-messages.ts';
import type { RecordedEnvelope } from '../../rounds/envelope-record.ts';
import type {
  SecaggConsistencyBody,
  SecaggKeysBody,
  SecaggSharesBody,
  SecaggUnmaskBody,
  SecureSection,
} from '../../rounds/record.ts';
import { decodeSum, type FixedPointConfig } from '../fixed-point.ts';
import type { ShareReveal } from '../masking.ts';
import { SecAggError } from '../secagg-error.ts';
import { decodeShare } from '../shamir.ts';
import { hex, revealFields, sharesHashOf, verifySecagg, type SignedContext } from './commitments.ts';
import { expectedGraph, holdersOf, planOf, type SecureRoundPlan } from './plan.ts';
import { checkUnmaskable, unmaskSecureSum } from './unmask.ts';
import { consistencyShortfall, revealedOwners } from './consistency.ts';

export interface SecureRoundCollectorOptions {
  federation: string;
  round: number;
  /** The federation's config, with its secureAggregation section. */
  config: FederationConfig;
  /** The round's selected participants. */
  selected: readonly string[];
  /** Each selected participant's enrolled Ed25519 public key. */
  signingKeys: ReadonlyMap<string, Uint8Array>;
  /** The round-open record's hash: it seeds the graph. */
  roundOpenHash: string;
  /** Words of each masked input: the adapter's elements + 1. */
  length: number;
}

type Phase = 'advertise' | 'shares' | 'masked' | 'consistency' | 'reveal' | 'done';

interface Shared {
  commitment: string;
  sharesHash: string;
  signature: string;
  boxes: SharesPayload['ciphertexts'];
}

export class SecureRoundCollector {
  readonly #options: SecureRoundCollectorOptions;
  readonly #settings: SecureAggregationSettings;
  readonly #fixedPoint: FixedPointConfig;
  readonly #selected: ReadonlySet<string>;
  #phase: Phase = 'advertise';
  readonly #adverts = new Map<string, AdvertisePayload>();
  #plan?: SecureRoundPlan;
  readonly #shared = new Map<string, Shared>();
  #sharesBody?: SecaggSharesBody;
  readonly #masked = new Map<string, { hash: string; envelopeDigest: string; envelope: RecordedEnvelope }>();
  #unmask?: { body: SecaggUnmaskBody; survivors: number[]; dropped: number[] };
  #unmaskHash?: string;
  readonly #consistency = new Map<string, string>();
  readonly #reveals = new Map<string, RevealPayload>();

  constructor(options: SecureRoundCollectorOptions) {
    const { config } = options;
    if (!config.secureAggregation || config.aggregation.weightCap === undefined)
      throw new SecAggError(
        'SECAGG_CONFIG',
        'the federation config has no secureAggregation section (or no weightCap)',
      );
    this.#options = options;
    this.#settings = config.secureAggregation;
    this.#fixedPoint = secureFixedPoint(config.secureAggregation, config.aggregation.weightCap);
    if (options.selected.length > this.#fixedPoint.maxParticipants)
      throw new SecAggError(
        'SECAGG_CONFIG',
        `${options.selected.length} selected, more than maxParticipants ${this.#fixedPoint.maxParticipants}`,
      );
    this.#selected = new Set(options.selected);
  }

  /** The phase the round is in. */
  get phase(): Phase {
    return this.#phase;
  }

  #context(participant: string): SignedContext {
    return { federation: this.#options.federation, round: this.#options.round, participant };
  }

  /** Checks phase, round, membership and repeats shared by every add*. */
  #admit(
    phase: Phase,
    participant: string,
    payload: { round: number },
    members: (p: string) => boolean,
    seen: ReadonlyMap<string, unknown>,
    what: string,
  ): void {
    if (this.#phase !== phase)
      throw new SecAggError(
        'SECAGG_PHASE',
        `${what} of ${participant} comes in phase ${this.#phase}, not ${phase}`,
      );
    if (payload.round !== this.#options.round)
      throw new SecAggError(
        'SECAGG_INPUT',
        `round: ${what} is for round ${payload.round}, not ${this.#options.round}`,
      );
    if (!members(participant))
      throw new SecAggError(
        'SECAGG_STRANGER',
        `${what} comes from ${participant}, who is not in this phase of the round`,
      );
    if (seen.has(participant)) throw new SecAggError('SECAGG_REPEAT', `${what} of ${participant} came twice`);
  }

  #verify(
    what: 'advert' | 'shares' | 'consistency' | 'reveal',
    participant: string,
    fields: Parameters<typeof verifySecagg>[2],
    signature: Uint8Array,
  ): void {
    const key = this.#options.signingKeys.get(participant);
    if (!key || !verifySecagg(what, this.#context(participant), fields, key, signature))
      throw new SecAggError(
        'SECAGG_SIGNATURE',
        `signature: the ${what} of ${participant} is not signed by its enrolled key`,
      );
  }

  addAdvertise(participant: string, payload: AdvertisePayload): void {
    this.#admit('advertise', participant, payload, (p) => this.#selected.has(p), this.#adverts, 'the advert');
    const fields = { encryptionKey: hex(payload.encryptionKey), maskKey: hex(payload.maskKey) };
    this.#verify('advert', participant, fields, payload.signature);
    this.#adverts.set(participant, payload);
  }

  /** U1 as the secagg-keys record states it; ends the advertise phase. */
  keysBody(): SecaggKeysBody {
    if (this.#phase !== 'advertise')
      throw new SecAggError('SECAGG_PHASE', `keysBody comes after phase ${this.#phase}`);
    const participants = [...this.#adverts.keys()].sort(compareUtf8);
    const { graph, threshold } = expectedGraph(
      this.#settings,
      participants.length,
      this.#options.roundOpenHash,
    );
    const body: SecaggKeysBody = {
      graph,
      threshold,
      advertised: participants.map((participant) => {
        const a = this.#adverts.get(participant)!;
        return {
          participant,
          encryptionKey: hex(a.encryptionKey),
          maskKey: hex(a.maskKey),
          signature: hex(a.signature),
        };
      }),
    };
    this.#plan = planOf(body, this.#settings, this.#options.roundOpenHash);
    this.#phase = 'shares';
    return body;
  }

  addShares(participant: string, payload: SharesPayload): void {
    const plan = this.#plan;
    this.#admit(
      'shares',
      participant,
      payload,
      (p) => plan?.idOf.has(p) === true,
      this.#shared,
      'the shares',
    );
    const id = plan!.idOf.get(participant)!;
    const expected = holdersOf(plan!, id)
      .filter((h) => h !== id)
      .map((h) => plan!.participants[h - 1]);
    const to = payload.ciphertexts.map((c) => c.to).sort(compareUtf8);
    if (to.length !== expected.length || to.some((p, k) => p !== expected[k]))
      throw new SecAggError(
        'SECAGG_INPUT',
        `ciphertexts: the shares of ${participant} must hold one box for each of its ${expected.length} other holders`,
      );
    const sharesHash = sharesHashOf(payload.ciphertexts);
    const commitment = hex(payload.selfSeedCommitment);
    this.#verify('shares', participant, { selfSeedCommitment: commitment, sharesHash }, payload.signature);
    this.#shared.set(participant, {
      commitment,
      sharesHash,
      signature: hex(payload.signature),
      boxes: payload.ciphertexts,
    });
  }

  /** U2 as the secagg-shares record states it; ends the shares phase (fewer than t: SECAGG_ABORT). */
  sharesBody(): SecaggSharesBody {
    if (this.#phase !== 'shares')
      throw new SecAggError('SECAGG_PHASE', `sharesBody comes in phase ${this.#phase}`);
    const plan = this.#plan!;
    if (this.#shared.size < plan.threshold)
      throw new SecAggError(
        'SECAGG_ABORT',
        `${this.#shared.size} participants shared their keys, below the threshold ${plan.threshold}: the round aborts and nothing is revealed`,
      );
    const shared = [...this.#shared.keys()].sort(compareUtf8).map((participant) => {
      const s = this.#shared.get(participant)!;
      return {
        participant,
        selfSeedCommitment: s.commitment,
        sharesHash: s.sharesHash,
        signature: s.signature,
      };
    });
    this.#sharesBody = { shared };
    this.#phase = 'masked';
    return this.#sharesBody;
  }

  /** The boxes addressed to `participant` from those that shared (after sharesBody). */
  inbox(participant: string): InboxCiphertext[] {
    if (this.#phase === 'advertise' || this.#phase === 'shares')
      throw new SecAggError('SECAGG_PHASE', 'the inbox opens once the secagg-shares record is written');
    if (!this.#shared.has(participant))
      throw new SecAggError('SECAGG_STRANGER', `${participant} did not share its keys this round`);
    const out: InboxCiphertext[] = [];
    for (const [from, s] of [...this.#shared].sort((a, b) => compareUtf8(a[0], b[0])))
      for (const c of s.boxes) if (c.to === participant) out.push({ from, box: c.box });
    return out;
  }

  /** A masked input arrived (stored under `hash`, its envelope verified by the caller). */
  addMasked(
    participant: string,
    masked: { hash: string; envelopeDigest: string; envelope: RecordedEnvelope },
  ): void {
    this.#admit(
      'masked',
      participant,
      { round: this.#options.round },
      (p) => this.#shared.has(p),
      this.#masked,
      'the masked input',
    );
    this.#masked.set(participant, masked);
  }

  /** U3 and U2 \ U3 as the secagg-unmask record states them; refuses to expose (see the header). */
  unmaskBody(): SecaggUnmaskBody {
    if (this.#phase !== 'masked')
      throw new SecAggError('SECAGG_PHASE', `unmaskBody comes in phase ${this.#phase}`);
    const plan = this.#plan!;
    const shared = [...this.#shared.keys()].sort(compareUtf8);
    const survivorNames = shared.filter((p) => this.#masked.has(p));
    const droppedNames = shared.filter((p) => !this.#masked.has(p));
    const survivors = survivorNames.map((p) => plan.idOf.get(p)!);
    const dropped = droppedNames.map((p) => plan.idOf.get(p)!);
    checkUnmaskable(plan, new Set([...survivors, ...dropped]), survivors);
    this.#unmask = { body: { survivors: survivorNames, dropped: droppedNames }, survivors, dropped };
    this.#phase = 'consistency';
    return this.#unmask.body;
  }

  /** The written secagg-unmask record's hash: what the survivors sign. */
  unmaskRecorded(hash: string): void {
    if (this.#phase !== 'consistency' || this.#unmaskHash !== undefined)
      throw new SecAggError(
        'SECAGG_PHASE',
        `unmaskRecorded comes once, after unmaskBody; phase ${this.#phase}`,
      );
    this.#unmaskHash = hash;
  }

  addConsistency(participant: string, payload: ConsistencyPayload): void {
    const survivors = new Set(this.#unmask?.body.survivors);
    const what = 'the consistency signature';
    this.#admit('consistency', participant, payload, (p) => survivors.has(p), this.#consistency, what);
    if (this.#unmaskHash === undefined)
      throw new SecAggError('SECAGG_PHASE', 'the secagg-unmask record is not written yet');
    this.#verify('consistency', participant, { unmaskHash: this.#unmaskHash }, payload.signature);
    this.#consistency.set(participant, hex(payload.signature));
  }

  /** Whether every survivor signed (the wire waits for this or the phase's end). */
  allConsistent(): boolean {
    return this.#phase === 'consistency' && this.#consistency.size === this.#unmask!.survivors.length;
  }

  /** The secagg-consistency record's body; short of the quorums (consistency.ts): SECAGG_ABORT. */
  consistencyBody(): SecaggConsistencyBody {
    if (this.#phase !== 'consistency' || this.#unmaskHash === undefined)
      throw new SecAggError('SECAGG_PHASE', `consistencyBody comes in phase ${this.#phase}`);
    const plan = this.#plan!;
    const { survivors, dropped } = this.#unmask!;
    const signers = new Set([...this.#consistency.keys()].map((p) => plan.idOf.get(p)!));
    const short = consistencyShortfall(plan, revealedOwners(plan, survivors, dropped), signers);
    if (short !== undefined) throw new SecAggError('SECAGG_ABORT', `${short}: the round aborts`);
    this.#phase = 'reveal';
    const signatures = [...this.#consistency.keys()].sort(compareUtf8);
    return {
      unmaskHash: this.#unmaskHash,
      signatures: signatures.map((participant) => ({
        participant,
        signature: this.#consistency.get(participant)!,
      })),
    };
  }

  addReveal(participant: string, payload: RevealPayload): void {
    const survivors = new Set(this.#unmask?.body.survivors);
    const dropped = new Set(this.#unmask?.body.dropped);
    this.#admit('reveal', participant, payload, (p) => survivors.has(p), this.#reveals, 'the reveal');
    for (const [field, list, owners] of [
      ['self', payload.self, survivors],
      ['key', payload.key, dropped],
    ] as const) {
      list.forEach(({ owner, share }, k) => {
        if (!owners.has(owner))
          throw new SecAggError(
            'SECAGG_INPUT',
            `${field}[${k}]: ${participant} reveals a ${field} share of ${owner}, who is not ${field === 'self' ? 'a survivor' : 'dropped'}`,
          );
        if (k > 0 && compareUtf8(list[k - 1].owner, owner) >= 0)
          throw new SecAggError('SECAGG_INPUT', `${field}[${k}]: owners must be sorted, once each`);
        decodeShare(share);
      });
    }
    this.#verify('reveal', participant, revealFields(payload.self, payload.key), payload.signature);
    this.#reveals.set(participant, payload);
  }

  #shareReveals(): ShareReveal[] {
    const plan = this.#plan!;
    const ids = (l: RevealPayload['self']) =>
      new Map(l.map(({ owner, share }) => [plan.idOf.get(owner)!, share]));
    return [...this.#reveals].map(([p, r]) => ({
      holder: plan.idOf.get(p)!,
      self: ids(r.self),
      key: ids(r.key),
    }));
  }

  /** Whether every secret the sum needs has at least t revealed shares. */
  canUnmask(): boolean {
    if (this.#phase !== 'reveal') return false;
    const plan = this.#plan!;
    const reveals = this.#shareReveals();
    const count = (owner: number, kind: 'self' | 'key') =>
      reveals.filter(
        (r) => (kind === 'self' ? r.self : r.key).has(owner) && holdersOf(plan, owner).includes(r.holder),
      ).length;
    const survivors = new Set(this.#unmask!.survivors);
    const needed = this.#unmask!.dropped.filter((d) =>
      (plan.graph.get(d) ?? []).some((j) => survivors.has(j)),
    );
    return (
      this.#unmask!.survivors.every((i) => count(i, 'self') >= plan.threshold) &&
      needed.every((d) => count(d, 'key') >= plan.threshold)
    );
  }

  /** The unmasked sum, its total weight and round-closed's `secure` section (see the header). */
  unmask(masked: (participant: string) => Uint32Array): {
    sum: Uint32Array;
    totalWeight: number;
    secureSection: SecureSection;
  } {
    if (this.#phase !== 'reveal')
      throw new SecAggError('SECAGG_PHASE', `unmask comes in phase ${this.#phase}`);
    const plan = this.#plan!;
    const commitments = new Map([...this.#shared].map(([p, s]) => [plan.idOf.get(p)!, s.commitment]));
    const sum = unmaskSecureSum({
      plan,
      round: this.#options.round,
      commitments,
      survivors: this.#unmask!.survivors,
      dropped: this.#unmask!.dropped,
      reveals: this.#shareReveals(),
      masked: (id) => {
        const words = masked(plan.participants[id - 1]);
        if (!(words instanceof Uint32Array) || words.length !== this.#options.length)
          throw new SecAggError(
            'SECAGG_INPUT',
            `the masked input of ${plan.participants[id - 1]} must be ${this.#options.length} words`,
          );
        return words;
      },
      length: this.#options.length,
    });
    const { totalWeight } = decodeSum(sum, this.#unmask!.survivors.length, this.#fixedPoint);
    this.#phase = 'done';
    return { sum, totalWeight, secureSection: this.#section(totalWeight) };
  }

  #section(totalWeight: number): SecureSection {
    const survivors = this.#unmask!.body.survivors;
    return {
      maskedInputs: survivors.map((participant) => ({ participant, ...this.#masked.get(participant)! })),
      reveals: [...this.#reveals.keys()].sort(compareUtf8).map((participant) => {
        const r = this.#reveals.get(participant)!;
        return { participant, ...revealFields(r.self, r.key), signature: hex(r.signature) };
      }),
      totalWeight,
    };
  }
}
