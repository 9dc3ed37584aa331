// `fedit client rename <name>`: be shown under a new name in a federation this computer joined.
// The coordinator records the participant's signed request in its round log (`fedit audit` checks
// it); the membership file keeps the new name. The logic is core/federation/rename.ts.

import type { Command, Option } from 'commander';

export function registerClientRename(client: Command, homeOption: () => Option): void {
  client
    .command('rename')
    .description(
      'change the name the operator and the federation status show for you (the coordinator must be running)',
    )
    .argument('<name>', 'the new name, 1 to 64 characters')
    .option('--federation <id>', 'which joined federation (default: the only one)')
    .option('--json', 'print one JSON object', false)
    .addOption(homeOption())
    .action(async (name: string, o: { federation?: string; json: boolean; home?: string }) => {
      const { renameParticipant } = await import('../core/federation/index.ts');
      const m = await renameParticipant(name, { home: o.home, federation: o.federation });
      const result = { federation: m.federation, participantId: m.participantId, displayName: m.displayName };
      process.stdout.write(
        o.json
          ? `${JSON.stringify(result)}\n`
          : `you are now shown as ${m.displayName} in federation ${m.federation} (participant ${m.participantId})\n`,
      );
    });
}
