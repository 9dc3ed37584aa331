// `fedit coordinator ...` (operators). The coordinator package does the work; these commands parse
// options and print. `init`, with its many settings options, is in ./coordinator-init.ts.

import type { Command } from 'commander';
import { FeditError, federationPaths, fingerprint, privacyLine, publicIdentity } from '@fedit/shared';
import { logCoordinatorEvent } from './coordinator-log.ts';
import { fingerprintLine, registerInit } from './coordinator-init.ts';
import { LineLog, logFormatOption } from './log-line.ts';
import { number, positive } from './options.ts';
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

/** Matches DEFAULT_GRACE_MS of @fedit/coordinator (the CLI shows it in --help without loading it). */
const DEFAULT_GRACE_SECONDS = 10;

/** A TCP port: 0 (the system picks a free one) to 65535. */
const port = number('--port', { integer: true, min: 0, below: 65536, what: 'a port number from 0 to 65535' });

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

function registerInvite(coordinator: Command): void {
  coordinator
    .command('invite')
    .description('print a one-time invite a participant pastes into `fedit client join`')
    .argument('<dir>', 'the federation folder')
    .requiredOption(
      '--url <url>',
      'the address participants reach the coordinator at, e.g. https://fedit.example.org (plain http:// only for this computer or a trusted network; add /<federation id> when one process serves several federations)',
    )
    .option('--expires-in <hours>', 'hours until the invite stops working', inviteHours)
    .option('--note <text>', 'a note for your records (who it is for)')
    .option('-n, --count <n>', 'how many invites', positive('--count', true), 1)
    .option('--json', 'print one JSON object: the invites and the fingerprint', false)
    .action(async (dir: string, o) => {
      const { createInvite, openFederationDirChecked } = await import('@fedit/coordinator');
      // An invite hands out the federation's id and the coordinator's keys, and the joiner is then
      // shown the settings: refuse, as start does, when the folder is not what the log records.
      const { identity, config, records } = await openFederationDirChecked(dir);
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
      // What the joiner will be told about differential privacy (the log's newest account).
      if (config.differentialPrivacy) {
        const last = records.findLast((r) => r.kind === 'round-closed' && r.body.privacy !== undefined);
        const seen =
          last?.kind === 'round-closed'
            ? { epsilon: last.body.privacy!.epsilon, round: last.round }
            : undefined;
        process.stderr.write(`differential privacy: ${privacyLine(config, seen)}\n`);
      }
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
      'remove a participant for good: a signed revoke record in the round log (a running coordinator appends it and drops the participant at once)',
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
      const revocation = await revokeParticipant(dir, participant, o.reason);
      process.stdout.write(
        `revoked ${participant} (record ${revocation.seq}${revocation.live ? ', by the running coordinator: its connections are closed' : ''}): ${o.reason}\n`,
      );
    });
}

function registerStart(coordinator: Command): void {
  coordinator
    .command('start')
    .description(
      'run the coordinator: accept participants and run the rounds; after the last round (or on a finished federation) it serves the final adapter to participants until stopped. Several folders: one process, one port, each federation at <url>/<federation id> (its invites carry that URL)',
    )
    .argument('<dir...>', 'the federation folder (or several)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: a free one, printed)', port, 7150)
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM; with --tls-key)')
    .option('--tls-key <file>', "the certificate's private key (PEM)")
    .option(
      '--grace <seconds>',
      'on SIGTERM/SIGINT, how long connections may finish before they are closed',
      number('--grace', { min: 0, below: 3600, what: 'a number of seconds in [0, 3600)' }),
      DEFAULT_GRACE_SECONDS,
    )
    .option(
      '--max-connections <n>',
      'most open connections (default 1024)',
      positive('--max-connections', true),
    )
    .option(
      '--max-connections-per-address <n>',
      'most open connections from one address (default 32; behind a reverse proxy, raise it to --max-connections)',
      positive('--max-connections-per-address', true),
    )
    .addOption(logFormatOption())
    .action(async (dirs: string[], o) => {
      if (Boolean(o.tlsCert) !== Boolean(o.tlsKey))
        throw new FeditError('CLI_OPTION', '--tls-cert and --tls-key go together: give both, or neither');
      const { startServer } = await import('@fedit/coordinator');
      const several = dirs.length > 1;
      // One log per federation: its JSON lines name it, and its text lines do when there are several.
      const logs = new Map<string, LineLog>();
      const logOf = (federation: string) => {
        let log = logs.get(federation);
        if (!log) {
          log = new LineLog({ format: o.logFormat, federation, label: several ? federation : undefined });
          logs.set(federation, log);
        }
        return log;
      };
      const server = await startServer({
        dirs,
        host: o.host,
        port: o.port,
        tls: o.tlsCert ? { cert: o.tlsCert, key: o.tlsKey } : undefined,
        graceMs: o.grace * 1000,
        maxConnections: o.maxConnections,
        maxConnectionsPerAddress: o.maxConnectionsPerAddress,
        onEvent: (e, federation, names) => logCoordinatorEvent(logOf(federation), e, names),
      });
      // After the last round it goes on serving the final adapter (participants that were away
      // fetch it when they come back), so only a signal stops it; the shutdown is bounded by --grace.
      const stop = async (signal: string) => {
        const all = [...logs.values()];
        for (const log of all)
          log.info('stopping', `${signal}: stopping (at most ${o.grace} s for open connections)`);
        try {
          await server.close();
        } catch (err) {
          for (const log of all)
            log.error('stop-failed', `could not stop cleanly: ${(err as Error).message}`);
          process.exit(1);
        }
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
      await Promise.all(server.federations.map((f) => f.finished));
    });
}
