// A federation's base model as a participant looks for it: its identity, its name and where the
// operator said it can be downloaded (baseModel.repo and revision, set at `coordinator init
// --model-repo`). For `fedit model fetch --federation` and the app's download step.

import type { FederationConfig, ModelRepo } from '@fedit/shared';
import {
  membershipPath,
  parseFederationSettings,
  resolveHome,
  selectMembership,
} from '../federation/index.ts';

export interface FederationBaseModel {
  federation: string;
  name: string;
  identity: string;
  /** Where to download it; absent when the operator did not say. */
  source?: ModelRepo;
}

/** The base model `config` pins, and its repository when the config names one. */
export function federationBaseModel(config: FederationConfig): FederationBaseModel {
  const { name, identity, repo, revision } = config.baseModel;
  const source = repo === undefined ? undefined : revision === undefined ? { repo } : { repo, revision };
  return { federation: config.id, name, identity, ...(source && { source }) };
}

/** The base model of a federation this home joined (`federation`, else the only one). */
export async function membershipBaseModel(
  home: string | undefined,
  federation: string | undefined,
): Promise<FederationBaseModel> {
  const dir = resolveHome(home);
  const membership = await selectMembership(dir, federation);
  const config = parseFederationSettings(membership.config, membershipPath(dir, membership.federation));
  return federationBaseModel(config);
}
