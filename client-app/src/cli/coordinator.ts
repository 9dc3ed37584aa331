// `fedit coordinator ...` (operators) and `fedit audit` (auditors). The coordinator package does the
// work; these commands parse options and print.

import { Option, type Command } from 'commander';
import { FeditError } from '@fedit/shared';

function positive(name: string, integer = false) {
  return (raw: string): number => {
    const v = Number(raw);
    if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
      throw new FeditError(
        'CLI_OPTION',
        `${name} must be a positive ${integer ? 'whole ' : ''}number, got "${raw}"`,
      );
    }
    return v;
  };
}

export function registerCoordinatorCommands(program: Command): void {
  const coordinator = program
    .command('coordinator')
    .description('run a federation: create it, invite participants, run the rounds');

  coordinator
    .command('init')
    .description(
      'create a federation in an empty folder: keys, settings, the initial global adapter, the round log',
    )
    .argument('<dir>', 'the federation folder to create')
    .requiredOption('--model <dir>', 'the base model (Hugging Face folder) every participant must train on')
    .option('--model-name <name>', 'how participants see the base model named')
    .option('--name <name>', "the federation's name", 'fedit federation')
    .option('--rounds <n>', 'number of rounds', positive('--rounds', true), 5)
    .option('--rank <n>', 'LoRA rank', positive('--rank', true), 16)
    .option('--alpha <n>', 'LoRA alpha', positive('--alpha'), 16)
    .option('--dropout <p>', 'LoRA dropout', Number, 0.05)
    .option('--targets <list>', 'LoRA target modules', 'q_proj,v_proj')
    .option(
      '--local-steps <n>',
      'optimizer steps each participant runs per round',
      positive('--local-steps', true),
      20,
    )
    .option('--batch-size <n>', 'local batch size', positive('--batch-size', true), 4)
    .option('--lr <rate>', 'local learning rate', positive('--lr'), 3e-4)
    .option('--cutoff-len <n>', 'longest example in tokens', positive('--cutoff-len', true), 256)
    .addOption(
      new Option('--template <name>', 'prompt template participants train with')
        .choices(['alpaca', 'chat'])
        .default('alpaca'),
    )
    .option('--fraction <f>', 'share of participants selected per round', positive('--fraction'), 1)
    .option(
      '--min-participants <n>',
      'participants per round at least (rounds wait for this many online)',
      positive('--min-participants', true),
      2,
    )
    .option(
      '--min-updates <n>',
      'fewest updates a round needs, else it is aborted',
      positive('--min-updates', true),
      2,
    )
    .option('--deadline <seconds>', 'round deadline', positive('--deadline'), 3600)
    .option(
      '--max-update-norm <n>',
      "largest L2 norm of an update's change to the global adapter",
      positive('--max-update-norm'),
      1000,
    )
    .action(async (dir: string, o) => {
      const { initFederation } = await import('@fedit/coordinator');
      const { config } = await initFederation(dir, {
        modelDir: o.model,
        modelName: o.modelName,
        settings: {
          name: o.name,
          rounds: o.rounds,
          lora: {
            rank: o.rank,
            alpha: o.alpha,
            dropout: o.dropout,
            targets: String(o.targets)
              .split(',')
              .map((t) => t.trim()),
          },
          training: {
            localSteps: o.localSteps,
            batchSize: o.batchSize,
            lr: o.lr,
            cutoffLen: o.cutoffLen,
            template: o.template,
            trainOnInputs: false,
          },
          participantsPerRound: { fraction: Math.min(1, o.fraction), minimum: o.minParticipants },
          minUpdates: o.minUpdates,
          roundDeadlineSeconds: o.deadline,
          limits: {
            maxUpdateNorm: o.maxUpdateNorm,
            maxUploadBytes: 512 * 1024 * 1024,
            maxExampleCount: 10_000_000,
          },
        },
      });
      process.stdout.write(
        `created federation ${config.id} in ${dir}\n  base model ${config.baseModel.name} (${config.baseModel.identity})\n  next: fedit coordinator invite ${dir} --url http://HOST:PORT, then fedit coordinator start ${dir}\n`,
      );
    });

  coordinator
    .command('invite')
    .description('print a one-time invite a participant pastes into `fedit client join`')
    .argument('<dir>', 'the federation folder')
    .requiredOption(
      '--url <url>',
      'the address participants reach the coordinator at, e.g. http://10.0.0.5:7150',
    )
    .option('--expires-in <hours>', 'hours until the invite stops working', positive('--expires-in'))
    .option('--note <text>', 'a note for your records (who it is for)')
    .option('-n, --count <n>', 'how many invites', positive('--count', true), 1)
    .action(async (dir: string, o) => {
      const { createInvite } = await import('@fedit/coordinator');
      for (let i = 0; i < o.count; i++)
        process.stdout.write(
          createInvite(dir, { url: o.url, expiresInHours: o.expiresIn, note: o.note }) + '\n',
        );
    });

  coordinator
    .command('participants')
    .description('list enrolled participants (from the round log)')
    .argument('<dir>', 'the federation folder')
    .option('--json', 'print JSON', false)
    .action(async (dir: string, o) => {
      const { federationPaths } = await import('@fedit/coordinator');
      const { readRoundLog } = await import('@fedit/shared');
      const { records } = await readRoundLog(federationPaths(dir).log);
      const rows = records
        .filter((r) => r.kind === 'enrol' || r.kind === 'revoke')
        .reduce((m, r) => {
          const b = r.body as { participant: string; displayName?: string; reason?: string };
          if (r.kind === 'enrol')
            m.set(b.participant, {
              id: b.participant,
              name: b.displayName ?? '',
              enrolledAt: r.time,
              revoked: '',
            });
          else if (m.has(b.participant)) m.get(b.participant)!.revoked = `${r.time} (${b.reason})`;
          return m;
        }, new Map<string, { id: string; name: string; enrolledAt: string; revoked: string }>());
      if (o.json) process.stdout.write(JSON.stringify([...rows.values()]) + '\n');
      else
        for (const p of rows.values())
          process.stdout.write(
            `${p.id}  ${p.name.padEnd(20)}  enrolled ${p.enrolledAt}${p.revoked ? `  REVOKED ${p.revoked}` : ''}\n`,
          );
    });

  coordinator
    .command('revoke')
    .description(
      'remove a participant for good: a signed revoke record in the round log (stop the coordinator first)',
    )
    .argument('<dir>', 'the federation folder')
    .argument('<participant>', 'the participant id (see fedit coordinator participants)')
    .requiredOption('--reason <text>', 'why, as the round log will record it')
    .action(async (dir: string, participant: string, o) => {
      const { revokeParticipant } = await import('@fedit/coordinator');
      const record = await revokeParticipant(dir, participant, o.reason);
      process.stdout.write(`revoked ${participant} (record ${record.seq}): ${o.reason}\n`);
    });

  coordinator
    .command('start')
    .description('run the coordinator: accept participants and run the rounds')
    .argument('<dir>', 'the federation folder')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', positive('--port', true), 7150)
    .action(async (dir: string, o) => {
      const { startCoordinator } = await import('@fedit/coordinator');
      const c = await startCoordinator({
        dir,
        host: o.host,
        port: o.port,
        onEvent: (e) => {
          const t = new Date().toISOString().slice(11, 19);
          switch (e.type) {
            case 'listening':
              process.stdout.write(`${t} listening on ${e.url}\n`);
              break;
            case 'round-open':
              process.stdout.write(`${t} round ${e.round} open: ${e.selected.length} selected\n`);
              break;
            case 'round-closed':
              process.stdout.write(
                `${t} round ${e.round} closed: ${e.updates} updates -> ${e.adapter}${e.dropped.length ? `, dropped ${e.dropped.map((d) => `${d.participant.slice(0, 8)} (${d.reason})`).join(', ')}` : ''}\n`,
              );
              break;
            case 'round-aborted':
              process.stdout.write(`${t} round ${e.round} aborted: ${e.reason}\n`);
              break;
            case 'recovered':
              process.stdout.write(
                `${t} round ${e.abortedRound} was open when the coordinator stopped; recorded as aborted\n`,
              );
              break;
            default:
              process.stdout.write(
                `${t} ${e.type}${'participant' in e ? ` ${e.participant.slice(0, 8)}` : ''}\n`,
              );
          }
        },
      });
      const stop = async () => {
        await c.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const { completed } = await c.finished;
      if (completed) {
        process.stdout.write('all rounds done\n');
        await c.close();
      }
    });

  program
    .command('audit')
    .description(
      'verify a federation from its round log and blobs alone: chain, signatures, selection, and every aggregate recomputed',
    )
    .argument('<dir>', 'a federation folder, or a copy of its log/ and blobs/')
    .option('--key <hex>', "the coordinator's public signing key (default: keys/coordinator.pub.json)")
    .option('--json', 'print the report as JSON', false)
    .action(async (dir: string, o) => {
      const { auditFederation, formatAudit } = await import('@fedit/coordinator');
      const report = await auditFederation(dir, { coordinatorKey: o.key });
      process.stdout.write((o.json ? JSON.stringify(report) : formatAudit(report)) + '\n');
      if (!report.ok) process.exitCode = 1;
    });
}
