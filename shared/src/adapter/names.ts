// PEFT's names for LoRA tensors in adapter_model.safetensors: the module's path inside the
// Hugging Face model, prefixed by PEFT's wrapper ("base_model.model.") and followed by the LoRA
// factor, with PEFT's adapter name ("default") already removed, as save_pretrained writes them:
//
//   base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight   A: [r, in_features]
//   base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight   B: [out_features, r]

export type LoraFactor = 'A' | 'B';

const PREFIX = 'base_model.model.';
// Module paths are nn.Module attribute names (identifiers or list indices) joined by dots.
const NAME = /^base_model\.model\.((?:[A-Za-z0-9_]+\.)*[A-Za-z0-9_]+)\.lora_(A|B)\.weight$/;

/** PEFT's name for one factor of the LoRA on `modulePath` (e.g. "model.layers.3.self_attn.q_proj"). */
export function peftLoraTensorName(modulePath: string, factor: LoraFactor): string {
  return `${PREFIX}${modulePath}.lora_${factor}.weight`;
}

/** The module path and factor a PEFT LoRA tensor name denotes, or undefined if it is not one. */
export function parsePeftLoraTensorName(
  name: string,
): { modulePath: string; factor: LoraFactor } | undefined {
  const match = NAME.exec(name);
  return match ? { modulePath: match[1], factor: match[2] as LoraFactor } : undefined;
}

/** Why `name` is not a LoRA tensor fedit reads, in words a person can act on. */
export function explainForeignTensorName(name: string): string {
  if (/\.lora_embedding_[AB]$/.test(name)) {
    return 'it is a LoRA on an embedding layer, which fedit does not support';
  }
  if (/\.lora_magnitude_vector(\.weight)?$/.test(name))
    return 'it is a DoRA magnitude vector; fedit reads plain LoRA';
  if (/\.lora_[AB]\.[^.]+\.weight$/.test(name)) {
    return 'it still carries a PEFT adapter name (e.g. ".lora_A.default.weight"); save it with PEFT\'s save_pretrained';
  }
  if (!name.startsWith(PREFIX)) {
    return `PEFT LoRA tensor names start with "${PREFIX}" and end with ".lora_A.weight" or ".lora_B.weight"`;
  }
  return 'it is not a LoRA factor (names end with ".lora_A.weight" or ".lora_B.weight")';
}
