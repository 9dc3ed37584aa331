import { FeditError } from '../errors.ts';

export type AdapterErrorCode =
  /** The adapter folder, or one of its two files, does not exist. */
  | 'ADAPTER_MISSING'
  /** adapter_config.json is not JSON, or a field has the wrong type or an invalid value. */
  | 'ADAPTER_CONFIG'
  /** A valid PEFT setting fedit does not implement (another peft_type, DoRA, rank_pattern, ...). */
  | 'ADAPTER_UNSUPPORTED'
  /** The adapter holds no tensors. */
  | 'ADAPTER_EMPTY'
  /** A tensor name is not PEFT's `base_model.model.<module>.lora_A|lora_B.weight`. */
  | 'ADAPTER_TENSOR_NAME'
  /** A module has lora_A without lora_B, or the reverse. */
  | 'ADAPTER_UNPAIRED'
  /** A tensor is not 2-D, its rank disagrees with the config's r, or a dtype fedit cannot decode. */
  | 'ADAPTER_SHAPE'
  /** A tensor holds NaN or ±Infinity. */
  | 'ADAPTER_NOT_FINITE'
  /** A tensor adapts a module that the config's target_modules does not name. */
  | 'ADAPTER_TARGET'
  /** The content hash fedit recorded in the file's metadata differs from the tensors' hash. */
  | 'ADAPTER_HASH'
  /** The folder to write into already holds files and overwriting was not asked for. */
  | 'ADAPTER_EXISTS';

/** A LoRA adapter folder (or one about to be written) is invalid; the message names file and tensor. */
export class AdapterError extends FeditError {
  declare readonly code: AdapterErrorCode;

  constructor(code: AdapterErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
