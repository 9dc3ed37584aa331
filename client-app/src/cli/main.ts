// The `fedit` command. Each package contributes its command group; this file only composes them,
// so `fedit --help` is the one map of everything a person can do from a terminal.
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { FeditError } from '@fedit/shared';
import { registerTensorCommands } from './tensors.ts';

const require = createRequire(import.meta.url);
const { version } = require('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('fedit')
    .description(
      'Federated instruction tuning: train a LoRA adapter on your own data, share only encrypted, signed adapter deltas.',
    )
    .version(version, '-V, --version', 'print the fedit version')
    .showHelpAfterError('(run `fedit --help` for the list of commands)')
    .showSuggestionAfterError(true)
    .exitOverride();
  registerTensorCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit with 0; usage errors were already printed by commander
      return err.exitCode;
    }
    if (err instanceof FeditError) {
      process.stderr.write(`fedit: ${err.message} [${err.code}]\n`);
      return 1;
    }
    throw err;
  }
}
