// The coordinator's HTTP surface for operators, over real sockets on loopback: /healthz, /readyz
// (its phases, each federation's state), /metrics (the named series, a refused update counted by
// its code), everything else 404/405, bodies 413, oversized headers 431, a request that never
// finishes its headers closed; and one process serving two federations on one port, each
// completing a round at /<federation id>, while "/" names them and closes.

import test from 'ava';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInvite, openFederationDir, startServer } from '../src/index.ts';
import { createCoordinatorHttpServer, type Readiness } from '../src/server/http-server.ts';
import { CoordinatorMetrics } from '../src/server/metrics.ts';
import {
  initTestFederation,
  logRecords,
  startTestFederation,
  tempDir,
  withinLimit,
} from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';
import { io } from 'socket.io-client';
import { msgpackParser, parseInvite, publicIdentity } from '@fedit/shared';

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTP request with Node's client; `body` is sent as is (even with GET). */
function get(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  return withinLimit(
    new Promise<Answer>((resolve, reject) => {
      const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => (body += s));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      });
      req.on('error', reject);
      req.end(options.body);
    }),
    () => `an answer to ${options.method ?? 'GET'} ${url}`,
  );
}

/** The value of the Prometheus sample `name{labels}` in `text` (labels in any order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

test('/healthz, /readyz and /metrics answer; a round, its counted update and a refused one are in the metrics by code', async (t) => {
  const fed = await startTestFederation(t, { rounds: 1, participantsPerRound: { fraction: 1, minimum: 1 } });
  const id = fed.coordinator.config.id;
  const base = fed.coordinator.url;
  t.like(await get(`${base}/healthz`), { status: 200, body: 'ok\n' });
  const ready = await get(`${base}/readyz`);
  t.is(ready.status, 200);
  t.deepEqual(JSON.parse(ready.body), { phase: 'ready', federations: { [id]: 'running' } });

  const peer = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'trainer');
  t.teardown(() => peer.close());
  const open = await peer.roundOpen(1);
  t.like(await peer.upload(await peer.update(open)), { ok: true });
  await fed.waitFor('round-closed', (e) => e.round === 1);
  // An update after the last round: refused at update:begin, with its code.
  const late = await peer.upload(await peer.update(open));
  t.false(late.ok);
  const code = late.ok ? '' : late.error.code;

  const metrics = await get(`${base}/metrics`);
  t.is(metrics.status, 200);
  t.regex(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const m = metrics.body;
  t.is(sample(m, 'fedit_rounds_total', { federation: id, outcome: 'closed' }), 1);
  t.is(sample(m, 'fedit_updates_counted_total', { federation: id }), 1);
  t.is(sample(m, 'fedit_updates_refused_total', { federation: id, code }), 1, `refused by ${code}`);
  t.is(sample(m, 'fedit_round_duration_seconds_count', { federation: id, outcome: 'closed' }), 1);
  t.is(sample(m, 'fedit_round_phase_duration_seconds_count', { federation: id, phase: 'waiting' }), 1);
  t.is(sample(m, 'fedit_round_phase_duration_seconds_count', { federation: id, phase: 'collecting' }), 1);
  t.is(sample(m, 'fedit_participants_online', { federation: id }), 1);
  t.is(sample(m, 'fedit_participants_selected', { federation: id }), 0, 'none between rounds');
  t.true(sample(m, 'fedit_bytes_received_total', {})! > 5_000, 'the upload (about 7 KB) came in');
  t.true(sample(m, 'fedit_bytes_sent_total', {})! > 0);
  t.true(sample(m, 'nodejs_eventloop_lag_seconds', {})! >= 0);
  // The federation turns 'finished' once its run settles, just after the last round's record.
  let state = '';
  for (const until = Date.now() + 10_000; Date.now() < until && state !== 'finished';) {
    state = JSON.parse((await get(`${base}/readyz`)).body).federations[id];
    if (state !== 'finished') await new Promise((r) => setTimeout(r, 50));
  }
  t.is(state, 'finished');
});

test('other paths are 404, other methods 405, a request with a body 413, oversized headers 431', async (t) => {
  const fed = await startTestFederation(t);
  const base = fed.coordinator.url;
  t.is((await get(`${base}/`)).status, 404, 'a plain GET / answers (a load balancer check gets a status)');
  t.is((await get(`${base}/metrics/x`)).status, 404);
  t.is((await get(`${base}/healthz`, { method: 'DELETE' })).status, 405);
  const posted = await get(`${base}/healthz`, { method: 'POST', body: 'x'.repeat(1 << 16) });
  t.is(posted.status, 413);
  t.is(posted.headers.connection, 'close');
  t.is((await get(`${base}/metrics`, { body: 'x', headers: { 'content-length': '1' } })).status, 413);
  t.is((await get(`${base}/healthz`, { headers: { 'x-filler': 'a'.repeat(10_000) } })).status, 431);
  t.is((await get(`${base}/healthz`)).status, 200, 'and it still answers');
});

test('/readyz is 503 while starting and stopping; a request whose headers never finish is closed', async (t) => {
  let readiness: Readiness = { phase: 'starting', federations: { a: 'opening' } };
  const http = createCoordinatorHttpServer({
    readiness: () => readiness,
    metrics: new CoordinatorMetrics(),
    timeouts: { headersMs: 500 },
  });
  const url = await http.listen('127.0.0.1', 0);
  t.teardown(() => http.close(0));
  const starting = await get(`${url}/readyz`);
  t.is(starting.status, 503);
  t.deepEqual(JSON.parse(starting.body), readiness);
  readiness = { phase: 'ready', federations: { a: 'running' } };
  t.is((await get(`${url}/readyz`)).status, 200);
  readiness = { phase: 'stopping', federations: { a: 'stopping' } };
  t.is((await get(`${url}/readyz`)).status, 503);

  const { port } = new URL(url);
  const slow = connect(Number(port), '127.0.0.1');
  slow.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // and nothing more
  const started = Date.now();
  const answer = await withinLimit(
    new Promise<string>((resolve) => {
      let got = '';
      slow.setEncoding('utf8').on('data', (s: string) => (got += s));
      slow.on('close', () => resolve(got));
    }),
    () => 'the server to close a connection whose headers never finished',
  );
  t.regex(answer, /^HTTP\/1\.1 408/);
  t.true(Date.now() - started < 5_000);
});

test('one process serves two federations on one port: each completes a round at /<id>, "/" names them', async (t) => {
  const roots = [
    await initTestFederation(t, { name: 'study one', participantsPerRound: { fraction: 1, minimum: 1 } }),
    await initTestFederation(t, { name: 'study two', participantsPerRound: { fraction: 1, minimum: 1 } }),
  ];
  const server = await startServer({ dirs: roots, host: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  const ids = roots.map((r) => openFederationDir(r).config.id);
  t.not(ids[0], ids[1]);
  t.deepEqual(
    server.federations.map((f) => f.url),
    ids.map((id) => `${server.url}/${id}`),
  );
  t.deepEqual(JSON.parse((await get(`${server.url}/readyz`)).body), {
    phase: 'ready',
    federations: { [ids[0]]: 'running', [ids[1]]: 'running' },
  });

  await Promise.all(
    roots.map(async (root, i) => {
      const { identity, config } = openFederationDir(root);
      const url = server.federations[i].url;
      const target = { url, federation: config.id, coordinator: publicIdentity(identity), config };
      const token = parseInvite(createInvite(root, { url })).token;
      const peer = await (await Peer.connect(target)).join(token, `trainer ${i}`);
      t.teardown(() => peer.close());
      const open = await peer.roundOpen(1);
      t.like(await peer.upload(await peer.update(open)), { ok: true });
      await peer.roundClosed(1);
    }),
  );
  for (const root of roots) {
    const kinds = (await logRecords(root)).map((r) => r.kind);
    t.deepEqual(
      kinds.filter((k) => k.startsWith('round-')),
      ['round-open', 'round-closed'],
      root,
    );
  }
  const metrics = (await get(`${server.url}/metrics`)).body;
  for (const id of ids) t.is(sample(metrics, 'fedit_rounds_total', { federation: id, outcome: 'closed' }), 1);

  // A participant with an invite that lacks the path is told which federations there are.
  const lost = io(server.url, {
    parser: msgpackParser,
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  t.teardown(() => lost.close());
  const closed = new Promise((resolve) => lost.once('disconnect', resolve));
  const told = await withinLimit(
    new Promise<{ code: string; message: string }>((resolve) => lost.once('error', resolve)),
    () => 'the error event on "/"',
  );
  t.is(told.code, 'FEDERATION_PATH');
  t.true(told.message.includes(`${ids[0]}, ${ids[1]}`), told.message);
  await withinLimit(closed, () => 'the disconnect');
});

test('TLS files are checked at start: a missing file and a file that is no certificate are named', (t) => {
  const dir = tempDir(t);
  const metrics = new CoordinatorMetrics();
  const readiness = (): Readiness => ({ phase: 'starting', federations: {} });
  const missing = t.throws(() =>
    createCoordinatorHttpServer({
      readiness,
      metrics,
      tls: { cert: join(dir, 'none.pem'), key: join(dir, 'key.pem') },
    }),
  );
  t.like(missing, { code: 'COORDINATOR_TLS' });
  t.regex(missing.message, /cannot read the TLS certificate \(--tls-cert\) .*none\.pem/);
  writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
  const junk = t.throws(() =>
    createCoordinatorHttpServer({
      readiness,
      metrics,
      tls: { cert: join(dir, 'junk.pem'), key: join(dir, 'junk.pem') },
    }),
  );
  t.like(junk, { code: 'COORDINATOR_TLS' });
  t.regex(junk.message, /--tls-cert .*junk\.pem is not a PEM certificate/);
});
