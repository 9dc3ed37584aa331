// `fedit demo` (and `npm run demo`): a whole federation on this machine with the built-in model and
// tasks; see ../demo/demo.ts.
import type { Command } from 'commander';
import { DEMO_ROUNDS } from '../demo/demo-rounds.ts';
import { wholeNumber } from './options.ts';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run a small federation on this machine: coordinator, participants, FedIT rounds, audit (a few minutes)',
    )
    .option('--dir <dir>', 'where to write the federation and participants (default: ./fedit-demo-<time>)')
    .option(
      '--participants <n>',
      'participants (each holds 2 of the 6 task categories)',
      wholeNumber('--participants', 2),
      3,
    )
    .option('--rounds <n>', 'FedIT rounds', wholeNumber('--rounds', 1), DEMO_ROUNDS)
    .option('--threads <n>', 'CPU threads per model', wholeNumber('--threads', 1), 1)
    .option(
      '--secure-aggregation',
      'mask every update (SecAgg+): the coordinator sees only the sums; FedIT without SCAFFOLD',
      false,
    )
    .action(async (o) => {
      const { runDemo } = await import('../demo/demo.ts');
      const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
      const result = await runDemo({
        dir: o.dir ?? `fedit-demo-${stamp}`,
        participants: o.participants,
        rounds: o.rounds,
        threads: o.threads,
        secure: o.secureAggregation,
        print: (line) => process.stdout.write(line + '\n'),
      });
      if (!result.auditOk) process.exitCode = 1;
    });
}
