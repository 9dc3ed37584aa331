// The public identities that come with a secure round's secagg-keys record ('secagg:phase'
// {record, identities}), and the signing keys a participant checks the adverts with. An identity
// counts only when its fingerprint is the participant id it is given for: participant ids are
// fingerprints of {sign, box} (crypto/identity.ts), so the coordinator cannot hand a participant a
// key of its own making for another participant's advert. Anything else is left out, and the
// advert it would vouch for is then refused (SECAGG_SIGNATURE) by SecureRoundClient.onKeys.

import { fingerprint, type ServerPayload, type SigningKeys } from '@fedit/shared';

export type AdvertiserIdentity = NonNullable<ServerPayload<'secagg:phase'>['identities']>[number];

/** The identities a 'secagg:phase' message carries (none but with the keys record). */
export function identitiesOf(message: unknown): AdvertiserIdentity[] {
  const { identities } = message as ServerPayload<'secagg:phase'>;
  return identities ?? [];
}

/** The Ed25519 keys of the participants whose identity's fingerprint is their id. */
export function selfCertifiedKeys(identities: readonly AdvertiserIdentity[]): SigningKeys {
  const keys = new Map<string, Uint8Array>();
  for (const { participant, sign, box } of identities)
    if (fingerprint({ sign, box }) === participant) keys.set(participant, sign);
  return (participant) => keys.get(participant);
}
