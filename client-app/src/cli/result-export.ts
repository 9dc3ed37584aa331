// `fedit coordinator export` and `fedit client export`: a federation's global adapter as a PEFT
// adapter folder (adapter_model.safetensors, adapter_config.json, README.md model card). One
// writer behind both (shared/src/federation/result-adapter.ts); the operator's copy comes from the
// federation folder, the participant's from its adapter cache.
import type { Command, Option } from 'commander';
import { auditCommand, type FederationResult } from '@fedit/shared';
import { wholeNumber } from './options.ts';

const OUT_HELP = 'the adapter folder to write (must be new or empty)';

export function registerCoordinatorExport(coordinator: Command): void {
  coordinator
    .command('export')
    .description(
      "write a round's global adapter as a PEFT adapter folder with a model card (default: the last round that aggregated)",
    )
    .argument('<dir>', 'the federation folder (or a copy of it)')
    .option('--round <n>', 'the round whose global adapter to export', wholeNumber('--round', 0))
    .requiredOption('--out <folder>', OUT_HELP)
    .option('--json', 'print one JSON object', false)
    .action(async (dir: string, o: { round?: number; out: string; json: boolean }) => {
      const { exportRoundAdapter } = await import('@fedit/coordinator');
      const exported = await exportRoundAdapter(dir, { round: o.round, out: o.out });
      printExport(exported.out, exported.result, o.json);
    });
}

export function registerClientExport(client: Command, homeOption: () => Option): void {
  client
    .command('export')
    .description(
      'write a global adapter this computer holds as a PEFT adapter folder with a model card (default: the last round that aggregated)',
    )
    .option('--federation <id>', 'which joined federation (default: the only one)')
    .option('--round <n>', 'the round whose global adapter to export', wholeNumber('--round', 0))
    .requiredOption('--out <folder>', OUT_HELP)
    .option('--json', 'print one JSON object', false)
    .addOption(homeOption())
    .action(async (o: { federation?: string; round?: number; out: string; json: boolean; home?: string }) => {
      const { exportCachedAdapter, resolveHome } = await import('../core/federation/index.ts');
      const exported = await exportCachedAdapter(resolveHome(o.home), {
        federation: o.federation,
        round: o.round,
        out: o.out,
      });
      printExport(exported.out, exported.result, o.json);
    });
}

function printExport(out: string, result: FederationResult, json: boolean): void {
  const audit = auditCommand(result);
  if (json) {
    process.stdout.write(
      JSON.stringify({
        out,
        federation: result.config.id,
        round: result.round,
        adapterHash: result.adapterHash,
        template: result.config.training.template,
        roundsAggregated: result.roundsAggregated,
        contributions: result.contributions,
        logHead: result.logHead ?? null,
        audit,
      }) + '\n',
    );
    return;
  }
  process.stdout.write(
    [
      `wrote ${out}: round ${result.round}'s global adapter of ${result.config.name} (${result.adapterHash})`,
      `  PEFT adapter folder (adapter_config.json, adapter_model.safetensors) and README.md; prompt template ${result.config.training.template}`,
      `  verify the federation with: ${audit}`,
      '',
    ].join('\n'),
  );
}
