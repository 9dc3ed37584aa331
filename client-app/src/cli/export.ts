// `fedit export --model DIR --adapter DIR --out DIR --merge`: the adapter merged into its base
// model, written as a standalone Hugging Face checkpoint that runs without PEFT or fedit
// (transformers, vLLM, llama.cpp's converter).
import { InvalidArgumentError, type Command } from 'commander';
import { FeditError } from '@fedit/shared';

const DTYPES = ['F32', 'F16', 'BF16'] as const;
type ExportDType = (typeof DTYPES)[number];

interface ExportOptions {
  model: string;
  adapter: string;
  out: string;
  merge?: boolean;
  dtype: ExportDType;
  allowOtherBase?: boolean;
  json?: boolean;
}

export function registerExportCommands(program: Command): void {
  program
    .command('export')
    .description('merge a LoRA adapter into its base model and write a standalone Hugging Face checkpoint')
    .requiredOption('--model <dir>', 'the base model folder (config.json + safetensors weights)')
    .requiredOption('--adapter <dir>', 'the adapter folder (adapter_config.json + adapter_model.safetensors)')
    .requiredOption('--out <dir>', 'the folder to write (must be new or empty)')
    .option('--merge', 'merge the adapter into the base weights (the only export mode so far)')
    .option('--dtype <dtype>', `dtype of the written weights: ${DTYPES.join(', ')}`, parseDType, 'F32')
    .option('--allow-other-base', "merge even if the adapter's metadata names another base model")
    .option('--json', 'print one JSON object', false)
    .action(async (opts: ExportOptions) => {
      if (!opts.merge) {
        throw new FeditError(
          'EXPORT_MODE',
          'fedit export needs --merge: merging the adapter into the base weights (a standalone Hugging Face checkpoint) is the only export mode so far; the adapter folder itself already loads in PEFT',
        );
      }
      // Loaded here, not at the top: the compute engine (onnxruntime-node) is not needed for any
      // other command, and `fedit --help` should not pay for it.
      const { mergeAdapter } = await import('@fedit/kernels');
      const result = await mergeAdapter(opts.model, opts.adapter, opts.out, {
        dtype: opts.dtype,
        allowOtherBase: opts.allowOtherBase,
      });
      if (opts.json) {
        process.stdout.write(JSON.stringify(result) + '\n');
        return;
      }
      process.stdout.write(
        [
          `merged ${result.modules} adapted modules (scale ${result.scale}) into ${opts.model}`,
          `wrote ${result.outDir} (${result.dtype}): ${result.files.join(', ')}`,
          `adapter    ${result.adapterHash}`,
          `base model ${result.baseIdentity}`,
          ...(result.template === undefined
            ? []
            : [`prompt template ${result.template} (the adapter's; prompt the merged model with it)`]),
          '',
        ].join('\n'),
      );
    });
}

function parseDType(value: string): ExportDType {
  const dtype = value.toUpperCase();
  if (!(DTYPES as readonly string[]).includes(dtype)) {
    throw new InvalidArgumentError(`choose ${DTYPES.join(', ')}.`);
  }
  return dtype as ExportDType;
}
