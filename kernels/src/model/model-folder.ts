// The one description of a model folder that errors give a person: in the terms of the files they
// download from the Hugging Face Hub, never the name of a fedit function.

import { existsSync } from 'node:fs';

/** The message for a model folder `dir` that lacks `file`, or that is not there at all. */
export function missingModelFile(dir: string, file: string): string {
  const holds =
    'a model folder is a Hugging Face model as downloaded from the Hub or written by save_pretrained: config.json, model.safetensors, tokenizer.json';
  return existsSync(dir) ? `${dir} has no ${file}: ${holds}` : `${dir}: no such model folder (${holds})`;
}
