// `fedit client verify`: are this participant's counted updates in the coordinator's signed log,
// and is the log the one it saw before (and the one another participant or auditor saw, with
// --head)? Exits 1 naming the failure: a forked log, a receipt the log no longer holds, a head not
// signed by the key the invite pinned. The logic is core/federation/receipts.ts.

import type { Command, Option } from 'commander';
import type { SignedTreeHead } from '@fedit/shared';

export function registerClientVerify(client: Command, homeOption: () => Option): void {
  client
    .command('verify')
    .description(
      "check that your counted updates are in the coordinator's signed log and that every tree head you saw (and --head) is one log",
    )
    .option('--federation <id>', 'which joined federation (default: the only one)')
    .option(
      '--head <head>',
      'a signed tree head another participant or auditor holds (its JSON, or a file holding it)',
    )
    .option('--json', 'print one JSON object', false)
    .addOption(homeOption())
    .action(async (o: { federation?: string; head?: string; json: boolean; home?: string }) => {
      const { FeditError, readPinnedHead } = await import('@fedit/shared');
      const { receiptsLine, verifyMembershipLog } = await import('../core/federation/index.ts');
      const pinned = o.head === undefined ? undefined : readPinnedHead(o.head).head;
      if (pinned && !('signature' in pinned))
        throw new FeditError(
          'CLI_OPTION',
          "--head: give a signed tree head (another participant's or auditor's), not an unsigned {size, root}",
        );
      const otherHead = pinned as SignedTreeHead | undefined;
      const report = await verifyMembershipLog({ home: o.home, federation: o.federation, otherHead });
      process.stdout.write(o.json ? `${JSON.stringify(report)}\n` : `${receiptsLine(report)}\n`);
    });
}
