// `npm run app:dev`: the development shell (./dev-shell.ts) from a terminal. Prints the page's
// URL; open it in a browser. Ctrl-C stops it (training saves its checkpoint first).
//
//   npm run app:dev -- [--home DIR] [--port N] [--worker process|inline]
//
// The home folder is --home, else $FEDIT_HOME, else a new temporary folder (printed), so a try-out
// never touches the identity of a real installation. Power and idle limits: this shell reports a
// computer on mains power that nobody is using (HEADLESS_MONITOR), which is what a machine
// without a battery or a person at it is; the limits take effect in the desktop app.

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDevShell } from './dev-shell.ts';

const { values } = parseArgs({
  options: {
    home: { type: 'string' },
    port: { type: 'string', default: '0' },
    worker: { type: 'string', default: 'process' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    'usage: npm run app:dev -- [--home DIR] [--port N] [--worker process|inline]\n' +
      'Serves the desktop app on 127.0.0.1 against the real client core; open the printed URL.\n',
  );
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`fedit: --port must be a port number, got "${values.port}"\n`);
  process.exit(1);
}
if (values.worker !== 'process' && values.worker !== 'inline') {
  process.stderr.write(`fedit: --worker must be process or inline, got "${values.worker}"\n`);
  process.exit(1);
}
const home = values.home ?? process.env.FEDIT_HOME ?? (await mkdtemp(join(tmpdir(), 'fedit-app-')));
const shell = await startDevShell({ home, port, worker: values.worker }).catch(async (err: unknown) => {
  // What the person can act on (a damaged identity.json, a port in use) gets the CLI's one line;
  // a bug keeps its stack trace. Imported only here: the CLI's command table is not needed to serve.
  const { userErrorMessage } = await import('../cli/main.ts');
  const message = userErrorMessage(err);
  if (message === undefined) throw err;
  process.stderr.write(`fedit: ${message}\n`);
  process.exit(1);
});
process.stdout.write(`fedit app (development shell)\n  home  ${home}\n  open  ${shell.url}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write('stopping…\n');
  void shell.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
