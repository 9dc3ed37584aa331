// Creating a federation from a base model folder, for `fedit coordinator init`, the demo and the
// tests. The coordinator package never loads a model (it does not depend on the kernels): this is
// where the base model's identity and PEFT's initial LoRA adapter for it are made, and handed to
// the coordinator's initFederation.

import { randomBytes } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { DEFAULT_SETTINGS, initFederation, type FederationSettings } from '@fedit/coordinator';
import {
  initLoraTensors,
  loadCheckpoint,
  loraTensorSpecs,
  uniformSampler,
  validateLoraConfig,
  type LoraTarget,
} from '@fedit/kernels';
import {
  tensorFromF32,
  type FederationConfig,
  type Identity,
  type ModelRepo,
  type Tensor,
} from '@fedit/shared';

export interface InitFromModelOptions {
  /** The base model (Hugging Face folder) every participant must train on. */
  modelDir: string;
  /** How participants see the base model named (default: the repository, else the folder's name). */
  modelName?: string;
  /** Where participants download it (`fedit model fetch`): a Hub repository and revision. */
  modelRepo?: ModelRepo;
  settings?: Partial<FederationSettings>;
  /** Seed of the initial adapter's random A factors (default: random). */
  seed?: number;
}

/** Creates a federation in `root` whose initial global adapter is PEFT's LoRA init for the model. */
export async function initFederationFromModel(
  root: string,
  o: InitFromModelOptions,
): Promise<{ config: FederationConfig; identity: Identity }> {
  const model = await loadCheckpoint(o.modelDir);
  const { rank, alpha, dropout, targets } = o.settings?.lora ?? DEFAULT_SETTINGS.lora;
  const lora = validateLoraConfig({ rank, alpha, dropout, targets: targets as LoraTarget[] });
  const values = initLoraTensors(model.config, lora, uniformSampler(o.seed ?? randomBytes(4).readUInt32LE()));
  const initialAdapter = new Map<string, Tensor>(
    loraTensorSpecs(model.config, lora).map((s) => [s.name, tensorFromF32(s.shape, values.get(s.name)!)]),
  );
  return initFederation(root, {
    baseModel: {
      identity: model.identity,
      // Never the operator's path by default: it names a folder on their computer to everyone.
      name: o.modelName ?? o.modelRepo?.repo ?? basename(resolve(o.modelDir)),
      ...(o.modelRepo && { repo: o.modelRepo.repo }),
      ...(o.modelRepo?.revision !== undefined && { revision: o.modelRepo.revision }),
    },
    initialAdapter,
    settings: o.settings,
  });
}
