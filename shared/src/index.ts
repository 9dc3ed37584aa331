export { FeditError } from './errors.ts';
export { writeFileAtomic, syncDirectory } from './fs/atomic.ts';

export { DTYPES, dtypeByteSize, isDType, type DType, type FloatDType } from './tensors/dtype.ts';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './tensors/half.ts';
export { TensorError, type TensorErrorCode } from './tensors/tensor-error.ts';
export {
  assertValidTensor,
  numel,
  tensorByteLength,
  tensorFromF32,
  tensorToF32,
  type Tensor,
} from './tensors/tensor.ts';
export type { TensorCollection } from './tensors/tensor-entries.ts';

export { SafetensorsError, type SafetensorsErrorCode } from './tensors/safetensors-error.ts';
export {
  MAX_HEADER_BYTES,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from './tensors/safetensors-header.ts';
export {
  parseSafetensors,
  parseSafetensorsHeader,
  serializeSafetensors,
  type ParsedSafetensors,
} from './tensors/safetensors.ts';
export {
  readSafetensorsFile,
  readSafetensorsHeader,
  writeSafetensorsFile,
} from './tensors/safetensors-file.ts';
export { hashTensors } from './tensors/hash.ts';

export { AdapterError, type AdapterErrorCode } from './adapter/adapter-error.ts';
export {
  adapterScale,
  makeAdapterConfig,
  parseAdapterConfig,
  targetsModule,
  toPeftAdapterConfig,
  type AdapterConfig,
  type AdapterConfigInit,
} from './adapter/config.ts';
export { parsePeftLoraTensorName, peftLoraTensorName, type LoraFactor } from './adapter/names.ts';
export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  readAdapter,
  validateAdapterTensors,
  writeAdapter,
  type AdapterMetadata,
  type AdapterModule,
  type AdapterTensorInput,
  type LoraAdapter,
  type WriteAdapterOptions,
} from './adapter/adapter.ts';
