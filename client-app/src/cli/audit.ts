// `fedit audit` (auditors). The audit lives in @fedit/shared and is loaded only when the command
// runs, so an auditor's run loads neither the coordinator (socket.io, lowdb) nor the training
// engine (onnxruntime-node); test/audit-modules.test.ts holds it to that.

import type { Command } from 'commander';

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description(
      'verify a federation from its round log and blobs alone: chain, signatures, selection, and every aggregate recomputed',
    )
    .argument(
      '<dir>',
      'a federation folder, or a copy of its log/ and blobs/ (a missing blob fails the audit)',
    )
    .option(
      '--key <key>',
      "the coordinator's public signing key as you got it out of band: your invite string, a coordinator.pub.json path, or the key in hex or base64url. Without it the key is read from DIR/keys/coordinator.pub.json, i.e. from the folder being audited, which proves only that the log matches the key stored beside it",
    )
    .option(
      '--head <head>',
      'a signed tree head a participant or another auditor kept, or the {size, root} an earlier audit printed (its JSON, or a file holding it): the log must extend it, so a cut tail or a rewritten record fails the audit',
    )
    .option('--json', 'print the report as JSON (also when the audit fails; exit code 1 then)', false)
    .action(async (dir: string, o) => {
      const { auditFederation, formatAudit } = await import('@fedit/shared');
      const report = await auditFederation(dir, { coordinatorKey: o.key, head: o.head });
      process.stdout.write((o.json ? JSON.stringify(report) : formatAudit(report)) + '\n');
      if (!report.ok) process.exitCode = 1;
    });
}
