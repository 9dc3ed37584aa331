// The exit codes of `fedit`, in one table, so that a script can tell a mistake in the command line
// from bad input from a failure (docs/cli.md lists the same table):
//
//   0    success (also --help and --version)
//   1    failure: the command was right and its input usable, but it did not succeed (a
//        coordinator refused or could not be reached, a federation's files are damaged, ...)
//   2    usage: the command line is wrong (unknown command or option, a missing or invalid value)
//   65   bad input (sysexits' EX_DATAERR): a file or folder the command was given is missing or
//        is not what it should be (a dataset, a model folder, an adapter, an invite)
//   130  interrupted by Ctrl-C (the shell's 128 + SIGINT); a resumable command saved its state
//
// The class of a FeditError follows from its code's prefix; anything not listed is a failure.

import { CommanderError } from 'commander';
import { FeditError } from '@fedit/shared';

export const EXIT = { ok: 0, failure: 1, usage: 2, badInput: 65, interrupted: 130 } as const;

/** Error codes (or code prefixes, ending in "_") of a wrong command line. */
const USAGE_CODES = [
  'CLI_OPTION',
  'CLI_CONFIRM', // a question needs --yes when no one is at a terminal
  'SIMULATION_OPTIONS',
  'DATASET_OPTIONS',
  'EXPORT_MODE',
  'MODEL_REPO', // a malformed owner/name[@revision] argument or --model-repo
  'MODEL_FETCH_NO_REPO', // model fetch given neither a repository nor a joined federation
];

/** Error codes (or code prefixes) of a file or folder that is not what the command needs. */
const BAD_INPUT_CODES = [
  'DATASET_',
  'TOKENIZER',
  'CHAT_TEMPLATE',
  'CHECKPOINT',
  'MODEL_CONFIG',
  'WEIGHT_STORE',
  'SAFETENSORS_',
  'TENSOR_',
  'ADAPTER_',
  'INVITE_',
  'MERGE_',
  'FEDERATION_CONFIG',
  'NOT_A_FILE',
];

/** System errors that say a path the person gave is missing or the wrong kind of thing. */
const BAD_PATH_ERRNOS = ['ENOENT', 'ENOTDIR', 'EISDIR'];

const matches = (code: string, table: readonly string[]) =>
  table.some((entry) => (entry.endsWith('_') ? code.startsWith(entry) : code === entry));

/** The exit code for an error that ended a command. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (err instanceof FeditError) {
    if (matches(err.code, USAGE_CODES)) return EXIT.usage;
    if (matches(err.code, BAD_INPUT_CODES)) return EXIT.badInput;
    return EXIT.failure;
  }
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof errno === 'string' && BAD_PATH_ERRNOS.includes(errno)) return EXIT.badInput;
  return EXIT.failure;
}
