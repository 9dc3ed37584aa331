// The `fedit` command. Each package contributes its command group; this file only composes them,
// so `fedit --help` is the one map of everything a person can do from a terminal. Command files
// import their heavy modules (the engine, the coordinator) inside their actions, so a command
// loads only what it uses: `fedit audit` needs @fedit/shared alone.
import { Command, CommanderError } from 'commander';
import { FEDIT_VERSION, FeditError } from '@fedit/shared';
import { registerTensorCommands } from './tensors.ts';
import { registerLocalCommands } from './local.ts';
import { registerDemoCommand } from './demo.ts';
import { registerSimulateCommand } from './simulate.ts';
import { registerCoordinatorCommands } from './coordinator.ts';
import { registerAuditCommand } from './audit.ts';
import { registerPrivacyCommand } from './dp-options.ts';
import { registerClientCommands } from './client.ts';
import { registerExportCommands } from './export.ts';
import { registerModelCommands } from './model.ts';
import { exitCodeFor } from './exit-codes.ts';

const version = FEDIT_VERSION;

export function buildProgram(): Command {
  const program = new Command('fedit')
    .description(
      'Federated instruction tuning: train a LoRA adapter on your own data, share only encrypted, signed adapter deltas.',
    )
    .version(version, '-V, --version', 'print the fedit version')
    // Every error line starts with "fedit:", whether commander or a command raised it.
    .configureOutput({ outputError: (text, write) => write(`fedit: ${text.replace(/^error: /, '')}`) })
    .showHelpAfterError('(run `fedit --help` for the list of commands)')
    .showSuggestionAfterError(true)
    .exitOverride();
  registerDemoCommand(program);
  registerSimulateCommand(program);
  registerLocalCommands(program);
  registerCoordinatorCommands(program);
  registerAuditCommand(program);
  registerPrivacyCommand(program);
  registerClientCommands(program);
  registerTensorCommands(program);
  registerExportCommands(program);
  registerModelCommands(program);
  registerHelpCommand(program);
  return program;
}

/**
 * `fedit help [command]`. Replaces commander's built-in one, which answers `fedit help nosuch`
 * with the full help and no word about what was wrong.
 */
function registerHelpCommand(program: Command): void {
  program.helpCommand(false);
  program
    .command('help')
    .description('show help for fedit or for one command')
    .argument('[command]', 'the command to explain')
    .action((name: string | undefined) => {
      if (name === undefined) program.help();
      const command = program.commands.find((c) => c.name() === name || c.aliases().includes(name));
      if (!command) {
        program.error(`error: unknown command '${name}'`, { code: 'commander.unknownCommand' });
      }
      command.help();
    });
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    // A command may end without an error but not successfully (an interrupted `train` exits 130).
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    // help and version exit with 0; usage errors were already printed by commander
    if (err instanceof CommanderError) return exitCodeFor(err);
    const message = userErrorMessage(err);
    if (message === undefined) throw err; // a bug: let Node print the stack trace
    process.stderr.write(`fedit: ${message}\n`);
    return exitCodeFor(err);
  }
}

/**
 * The one-line message for an error the person at the terminal can act on: fedit's own errors and
 * the operating system's (a missing file, a directory where a file was expected, no permission).
 * Undefined for anything else, which is a bug and keeps its stack trace.
 */
export function userErrorMessage(err: unknown): string | undefined {
  if (err instanceof FeditError) return `${err.message} [${err.code}]`;
  if (isSystemError(err)) {
    // Node's message is "ENOENT: no such file or directory, open '/x'"; keep the description only.
    const description = err.message.replace(/^[A-Z0-9_]+: /, '').replace(/, \w+(?: '.*')?$/, '');
    return `${err.path ?? err.syscall}: ${description} [${err.code}]`;
  }
  return undefined;
}

function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string; syscall: string } {
  return (
    err instanceof Error &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    typeof (err as NodeJS.ErrnoException).syscall === 'string'
  );
}
