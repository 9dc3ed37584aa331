// An adapter folder as the engine takes it: its LoRA settings and float32 tensors, after checking
// that it was trained on this base model and fits it tensor for tensor. The check happens here, at
// the edge, so a PEFT adapter made for another model size (or for only some layers) is refused with
// a message naming the tensor, not with an onnxruntime shape error halfway through a run.

import {
  loraTensorSpecs,
  planMerge,
  type LlamaConfig,
  type LoraConfig,
  type LoraTarget,
} from '@fedit/kernels';
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
  model: { identity: string; config: LlamaConfig },
  allowOtherBase = false,
): Promise<EngineAdapter> {
  const adapter = await readAdapter(dir);
  const recorded = adapter.metadata.baseModelIdentity;
  if (recorded && recorded !== model.identity && !allowOtherBase) {
    throw new FeditError(
      'ADAPTER_OTHER_BASE',
      `${dir} was trained on another base model (${recorded}), not this one (${model.identity})`,
    );
  }
  if (adapter.config.useRslora) {
    throw new FeditError(
      'ADAPTER_UNSUPPORTED',
      `${dir}: rsLoRA adapters can be merged (fedit export --merge) but not applied directly yet`,
    );
  }
  // Every module must be a linear layer of this model with its shape (the merge's own check) ...
  planMerge(adapter, model.config, dir);
  const targets = [...new Set(adapter.modules.map((m) => m.path.split('.').pop()!))] as LoraTarget[];
  const config: LoraConfig = {
    rank: adapter.config.rank,
    alpha: adapter.config.alpha,
    dropout: adapter.config.dropout,
    targets,
  };
  // ... and the engine applies LoRA to a target in every layer, so each layer must have it.
  for (const spec of loraTensorSpecs(model.config, config)) {
    const tensor = adapter.tensors.get(spec.name);
    if (!tensor) {
      throw new FeditError(
        'ADAPTER_MISMATCH',
        `${dir} has no ${spec.target} LoRA for layer ${spec.layer} (${spec.name}); fedit applies an adapter to every layer, so adapters of only some layers (layers_to_transform) can be merged with fedit export --merge but not applied directly`,
      );
    }
    if (tensor.shape.join(',') !== spec.shape.join(',')) {
      throw new FeditError(
        'ADAPTER_MISMATCH',
        `${dir}: ${spec.name} is [${tensor.shape.join(', ')}], this model needs [${spec.shape.join(', ')}] at rank ${config.rank}; was the adapter trained for another model?`,
      );
    }
  }
  return {
    config,
    tensors: new Map([...adapter.tensors].map(([n, t]) => [n, tensorToF32(t)])),
    template: adapter.metadata.extra?.template,
    hash: adapter.hash,
  };
}
