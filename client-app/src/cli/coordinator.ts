// `fedit coordinator ...` (operators). The coordinator package does the work; these commands parse
// options and print.

import { Option, type Command } from 'commander';
import {
  FeditError,
  LIMIT_RULES,
  aggregationRuleNames,
  federationPaths,
  fingerprint,
  formatModelRepo,
  isPinnedRevision,
  parseModelRepo,
  publicIdentity,
  type ModelRepo,
} from '@fedit/shared';
import type { CoordinatorEvent, FederationSettings } from '@fedit/coordinator';
import { addLearningOptions, initSettings, type InitOptions } from './init-settings.ts';
import { addLoraOptions, positive } from './options.ts';
import { registerCoordinatorExport } from './result-export.ts';

/** The longest an invite may stay valid, in hours: ten years, createInvite's MAX_INVITE_HOURS. */
const MAX_INVITE_HOURS = 10 * 366 * 24;

function inviteHours(raw: string): number {
  const v = positive('--expires-in')(raw);
  if (v > MAX_INVITE_HOURS)
    throw new FeditError(
      'CLI_OPTION',
      `--expires-in must be at most ${MAX_INVITE_HOURS} hours (ten years), got "${raw}"`,
    );
  return v;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** "536870912", "512MiB", "1.5 GiB" -> bytes; NaN for anything else (the caller names the option). */
function parseByteSize(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(raw);
  const unit = m && SIZE_UNITS[m[2].toLowerCase()];
  return m && unit ? Number(m[1]) * unit : NaN;
}

export function registerCoordinatorCommands(program: Command): void {
  const coordinator = program
    .command('coordinator')
    .description('run a federation: create it, invite participants, run the rounds');

  registerInit(coordinator);
  registerInvite(coordinator);
  registerParticipants(coordinator);
  registerStatus(coordinator);
  registerRevoke(coordinator);
  registerStart(coordinator);
  registerCoordinatorExport(coordinator);
}

/**
 * The coordinator's fingerprint as the operator passes it on: `fedit client join` and the app show
 * participants the fingerprint of the key their invite carries, and it must be this one.
 */
function fingerprintLine(print: string): string {
  return `fingerprint ${print}  (participants see it when they join: give it to them another way, so they can compare)`;
}

function registerInit(coordinator: Command): void {
  addLearningOptions(
    addLimitOptions(
      addTrainingOptions(
        addLoraOptions(
          coordinator
            .command('init')
            .description(
              'create a federation in an empty folder: keys, settings, the initial global adapter, the round log',
            )
            .argument('<dir>', 'the federation folder to create')
            .requiredOption(
              '--model <dir>',
              'the base model (Hugging Face folder) every participant must train on',
            )
            .option(
              '--model-name <name>',
              "how participants see the base model named (default: the --model-repo repository, else the folder's name, never its path)",
            )
            .option(
              '--model-repo <owner/name[@revision]>',
              'the Hugging Face repository participants download the model from (`fedit model fetch`); best pinned to a commit hash',
              (raw: string) => parseModelRepo(raw, '--model-repo'),
            )
            .option('--name <name>', "the federation's name", 'fedit federation')
            .option(
              '--rounds <n>',
              'rounds to aggregate: a round aborted for too few updates does not count and is retried (after 3 aborts in a row, once a participant newly says it is ready); the round log records both',
              positive('--rounds', true),
              10,
            ),
        ),
      )
        .option(
          '--fraction <f>',
          'share of the ready participants (model and data loaded, able to train now) a round targets',
          positive('--fraction'),
          1,
        )
        .option(
          '--min-participants <n>',
          'participants per round at least (rounds wait for this many ready; a bare `client join` is never ready)',
          positive('--min-participants', true),
          2,
        )
        .option(
          '--over-selection <x>',
          'select this many times the target (Bonawitz et al. 2019), so that a round closes at its quorum without waiting for who is away',
          positive('--over-selection'),
        )
        .option(
          '--quorum <n>',
          'updates at which a round closes (default: the target); others still uploading are refused',
          positive('--quorum', true),
        )
        .option(
          '--min-updates <n>',
          'fewest updates a round needs, else it is aborted',
          positive('--min-updates', true),
          2,
        )
        .option('--deadline <seconds>', 'round deadline', positive('--deadline'), 3600)
        .option(
          '--aggregation-rule <name>',
          `how a round combines updates: ${aggregationRuleNames().join(', ')} (fedit: the example-weighted mean of every LoRA tensor)`,
          'fedit',
        ),
    ),
  )
    .option('--json', 'print one JSON object: federation, base model, fingerprint', false)
    .action(async (dir: string, o: InitOptions, command: Command) => {
      // Everything is checked before the model is loaded or the folder touched.
      const settings = initSettings(o, command) as Partial<FederationSettings>;
      const { initFederationFromModel } = await import('../operator/init-federation.ts');
      const { config, identity } = await initFederationFromModel(dir, {
        modelDir: o.model as string,
        modelName: o.modelName as string | undefined,
        modelRepo: o.modelRepo as ModelRepo | undefined,
        settings,
      });
      const operator = fingerprint(publicIdentity(identity));
      if (o.json) {
        const { id, name, baseModel } = config;
        process.stdout.write(
          JSON.stringify({ federation: id, name, dir, baseModel, fingerprint: operator }) + '\n',
        );
        return;
      }
      process.stdout.write(
        `created federation ${config.id} in ${dir}\n  base model ${config.baseModel.name} (${config.baseModel.identity})\n${modelSourceLines(config.baseModel)}  ${fingerprintLine(operator)}\n  next: fedit coordinator invite ${dir} --url http://HOST:PORT, then fedit coordinator start ${dir}\n`,
      );
    });
}

/** Where participants download the base model, as `init` prints it (nothing if it was not said). */
function modelSourceLines(base: { identity: string; repo?: string; revision?: string }): string {
  if (base.repo === undefined) return '';
  const source = formatModelRepo({ repo: base.repo, revision: base.revision });
  const moving = isPinnedRevision(base.revision)
    ? ''
    : `  note: ${base.revision ?? 'main'} is not a commit hash; if the repository changes, downloads stop matching the identity (pin a commit: --model-repo ${base.repo}@<commit>)\n`;
  return `  download  fedit model fetch ${source} --identity ${base.identity}\n${moving}`;
}

function addTrainingOptions(command: Command): Command {
  return command
    .option(
      '--local-steps <n>',
      'optimizer steps each participant runs per round (fewer steps over more rounds learns better: docs/learning.md)',
      positive('--local-steps', true),
      10,
    )
    .option('--batch-size <n>', 'local batch size', positive('--batch-size', true), 4)
    .option('--lr <rate>', 'local learning rate', positive('--lr'), 3e-4)
    .option('--cutoff-len <n>', 'longest example in tokens', positive('--cutoff-len', true), 256)
    .addOption(
      new Option('--template <name>', 'prompt template participants train with')
        .choices(['alpaca', 'chat'])
        .default('alpaca'),
    );
}

function addLimitOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--max-update-norm <n>',
        "largest L2 norm of an update's change to the global adapter; larger updates are refused",
      )
        .argParser(limit('--max-update-norm', 'maxUpdateNorm', Number))
        .default(1000),
    )
    .addOption(
      new Option(
        '--max-upload-size <size>',
        'largest update a participant may upload, in bytes or with KiB, MiB, GiB (e.g. 64MiB)',
      )
        .argParser(limit('--max-upload-size', 'maxUploadBytes', parseByteSize))
        .default(512 * 1024 ** 2, '512MiB'),
    )
    .addOption(
      new Option(
        '--max-example-count <n>',
        'largest example count an update may claim (its weight in the mean); larger claims are refused',
      )
        .argParser(limit('--max-example-count', 'maxExampleCount', Number))
        .default(10_000_000),
    );
}

/** A limit option's parser: the config's own rule (LIMIT_RULES), the message naming the option. */
function limit(flag: string, key: keyof typeof LIMIT_RULES, parse: (raw: string) => number) {
  return (raw: string): number => {
    const value = parse(raw);
    if (!LIMIT_RULES[key].check(value))
      throw new FeditError('CLI_OPTION', `${flag} must be ${LIMIT_RULES[key].what}, got "${raw}"`);
    return value;
  };
}

function registerInvite(coordinator: Command): void {
  coordinator
    .command('invite')
    .description('print a one-time invite a participant pastes into `fedit client join`')
    .argument('<dir>', 'the federation folder')
    .requiredOption(
      '--url <url>',
      'the address participants reach the coordinator at, e.g. http://10.0.0.5:7150',
    )
    .option('--expires-in <hours>', 'hours until the invite stops working', inviteHours)
    .option('--note <text>', 'a note for your records (who it is for)')
    .option('-n, --count <n>', 'how many invites', positive('--count', true), 1)
    .option('--json', 'print one JSON object: the invites and the fingerprint', false)
    .action(async (dir: string, o) => {
      const { createInvite, openFederationDirChecked } = await import('@fedit/coordinator');
      // An invite hands out the federation's id and the coordinator's keys, and the joiner is then
      // shown the settings: refuse, as start does, when the folder is not what the log records.
      const { identity } = await openFederationDirChecked(dir);
      const operator = fingerprint(publicIdentity(identity));
      const invites = Array.from({ length: o.count as number }, () =>
        createInvite(dir, { url: o.url, expiresInHours: o.expiresIn, note: o.note }),
      );
      if (o.json) {
        process.stdout.write(JSON.stringify({ invites, fingerprint: operator }) + '\n');
        return;
      }
      // stdout stays the invites alone, one a line, for scripts that hand them out.
      process.stdout.write(invites.map((invite) => invite + '\n').join(''));
      process.stderr.write(fingerprintLine(operator) + '\n');
    });
}

function registerParticipants(coordinator: Command): void {
  coordinator
    .command('participants')
    .description('list enrolled participants (from the round log)')
    .argument('<dir>', 'the federation folder')
    .option('--json', 'print JSON', false)
    .action(async (dir: string, o) => {
      const { openFederationDirChecked } = await import('@fedit/coordinator');
      const { readRoundLog } = await import('@fedit/shared');
      const { records } = await readRoundLog(federationPaths(dir).log);
      // The list comes from the round log alone (a copy of log/ is enough), so a federation.json
      // or keys that no longer match the log do not make it wrong: say so, and list anyway, since
      // `start` and `invite` would refuse such a folder.
      await openFederationDirChecked(dir).catch((err: unknown) => {
        if (!(err instanceof FeditError)) throw err;
        if (err.code !== 'FEDERATION_MISSING') process.stderr.write(`warning: ${err.message}\n`);
      });
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
}

function registerStatus(coordinator: Command): void {
  coordinator
    .command('status')
    .description(
      'the round timeline from the round log: selected, counted, dropped and why, and the held-out figures the participants signed (the means for the adapter each round trained from)',
    )
    .argument('<dir>', 'the federation folder (a copy of its log/ is enough)')
    .option('--json', 'print JSON', false)
    .action(async (dir: string, o) => {
      const { federationStatus, formatFederationStatus } = await import('@fedit/coordinator');
      const status = await federationStatus(dir);
      process.stdout.write(o.json ? JSON.stringify(status) + '\n' : formatFederationStatus(status));
    });
}

function registerRevoke(coordinator: Command): void {
  coordinator
    .command('revoke')
    .description(
      'remove a participant for good: a signed revoke record in the round log (stop the coordinator first)',
    )
    .argument('<dir>', 'the federation folder')
    .argument('<participant>', 'the participant id (see fedit coordinator participants)')
    .requiredOption('--reason <text>', 'why, as the round log will record it')
    .action(async (dir: string, participant: string, o) => {
      const { openFederationDirChecked, revokeParticipant } = await import('@fedit/coordinator');
      // A revoke appends a record signed with the folder's keys under its federation id. The
      // coordinator is stopped (the lock) and will not start on a folder that differs from its log,
      // so refusing here too costs no safety and keeps such a folder from growing more records.
      await openFederationDirChecked(dir);
      const record = await revokeParticipant(dir, participant, o.reason);
      process.stdout.write(`revoked ${participant} (record ${record.seq}): ${o.reason}\n`);
    });
}

function registerStart(coordinator: Command): void {
  coordinator
    .command('start')
    .description(
      'run the coordinator: accept participants and run the rounds; after the last round (or on a finished federation) it serves the final adapter to participants until stopped',
    )
    .argument('<dir>', 'the federation folder')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', positive('--port', true), 7150)
    .action(async (dir: string, o) => {
      const { startCoordinator } = await import('@fedit/coordinator');
      const c = await startCoordinator({
        dir,
        host: o.host,
        port: o.port,
        onEvent: printCoordinatorEvent,
      });
      // After the last round it goes on serving the final adapter (participants that were away
      // fetch it when they come back), so only a signal stops it.
      const stop = async () => {
        await c.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await c.finished;
    });
}

/** One line per coordinator event, prefixed with the time of day. */
function printCoordinatorEvent(e: CoordinatorEvent): void {
  const t = new Date().toISOString().slice(11, 19);
  switch (e.type) {
    case 'listening':
      process.stdout.write(`${t} listening on ${e.url}\n`);
      break;
    case 'round-open':
      process.stdout.write(
        `${t} round ${e.round} open: ${e.selected.length} selected of ${e.ready.length} ready, closes at ${e.quorum} updates\n`,
      );
      break;
    case 'round-closed':
      process.stdout.write(
        `${t} round ${e.round} closed: ${e.updates} updates -> ${e.adapter}${e.dropped.length ? `, dropped ${e.dropped.map((d) => `${d.participant.slice(0, 8)} (${d.reason})`).join(', ')}` : ''}\n`,
      );
      break;
    case 'round-aborted':
      process.stdout.write(`${t} round ${e.round} aborted: ${e.reason}\n`);
      break;
    case 'finished':
      process.stdout.write(
        e.earlier
          ? `${t} the federation finished earlier (${e.rounds} rounds): serving its results read-only, final adapter ${e.adapter}; no round opens, updates are refused; Ctrl-C stops\n`
          : `${t} all rounds done (${e.rounds}): serving the final adapter ${e.adapter} to participants until stopped (Ctrl-C)\n`,
      );
      break;
    case 'readiness':
      process.stdout.write(
        `${t} ${e.participant.slice(0, 8)} ${e.ready ? 'ready' : `not ready${e.reason ? ` (${e.reason})` : ''}`}\n`,
      );
      break;
    case 'paused':
      process.stdout.write(
        `${t} ${e.aborts} rounds aborted in a row: no round opens until a participant newly says it is ready\n`,
      );
      break;
    case 'recovered':
      process.stdout.write(
        `${t} round ${e.abortedRound} was open when the coordinator stopped; recorded as aborted\n`,
      );
      break;
    default:
      process.stdout.write(`${t} ${e.type}${'participant' in e ? ` ${e.participant.slice(0, 8)}` : ''}\n`);
  }
}
