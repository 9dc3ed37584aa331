// An adapter folder as the engine takes it: its LoRA settings and float32 tensors, after checking
// that it was trained on this base model.

import type { LoraConfig, LoraTarget } from '@fedit/kernels';
import { FeditError, readAdapter, tensorToF32 } from '@fedit/shared';

export interface EngineAdapter {
  config: LoraConfig;
  tensors: Map<string, Float32Array>;
  /** The prompt template it was trained with, when fedit trained it. */
  template?: string;
  hash: string;
}

export async function loadEngineAdapter(
  dir: string,
  baseIdentity: string,
  allowOtherBase = false,
): Promise<EngineAdapter> {
  const adapter = await readAdapter(dir);
  const recorded = adapter.metadata.baseModelIdentity;
  if (recorded && recorded !== baseIdentity && !allowOtherBase) {
    throw new FeditError(
      'ADAPTER_OTHER_BASE',
      `${dir} was trained on another base model (${recorded}), not this one (${baseIdentity})`,
    );
  }
  if (adapter.config.useRslora) {
    throw new FeditError(
      'ADAPTER_UNSUPPORTED',
      `${dir}: rsLoRA adapters can be merged (fedit export --merge) but not applied directly yet`,
    );
  }
  const targets = [...new Set(adapter.modules.map((m) => m.path.split('.').pop()!))] as LoraTarget[];
  return {
    config: {
      rank: adapter.config.rank,
      alpha: adapter.config.alpha,
      dropout: adapter.config.dropout,
      targets,
    },
    tensors: new Map([...adapter.tensors].map(([n, t]) => [n, tensorToF32(t)])),
    template: adapter.metadata.extra?.template,
    hash: adapter.hash,
  };
}
