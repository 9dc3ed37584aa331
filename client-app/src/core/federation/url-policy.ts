// Which coordinator URLs a participant connects to, and what it trusts there.
//
// Plain http:// carries the participant's settings, adapters and updates unencrypted, and lets
// anyone on the path watch or drop them: it is accepted only to a loopback address (this computer:
// localhost, 127.0.0.0/8, ::1), unless the person says otherwise (`--allow-insecure-http` on
// `fedit client join/run`, or FEDIT_ALLOW_INSECURE_HTTP=1 for the app and scripts). https:// is
// checked against the system's certificate authorities, plus NODE_EXTRA_CA_CERTS, plus the file
// given with `--ca` (for a coordinator with a self-signed certificate).
//
// The policy is the process's, like its trust store: the CLI sets it once from its options before
// any connection opens; every FederationConnection checks its URL against it (connection.ts).

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { FederationError } from './errors.ts';

export interface ConnectionPolicy {
  /** Connect over plain http:// to hosts that are not this computer. */
  allowInsecureHttp: boolean;
  /** PEM certificate(s) trusted for https:// besides the system's, from `--ca`. */
  ca?: string;
}

let policy: ConnectionPolicy = { allowInsecureHttp: process.env.FEDIT_ALLOW_INSECURE_HTTP === '1' };

/** Sets the process's policy from the CLI's options; a CA file that cannot be read is named. */
export function setConnectionPolicy(options: { allowInsecureHttp?: boolean; caFile?: string }): void {
  let ca: string | undefined;
  if (options.caFile !== undefined) {
    try {
      ca = readFileSync(options.caFile, 'utf8');
    } catch (err) {
      throw new FederationError(
        'FEDERATION_TLS',
        `cannot read --ca ${options.caFile}: ${(err as Error).message}`,
      );
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----'))
      throw new FederationError('FEDERATION_TLS', `--ca ${options.caFile} holds no PEM certificate`);
  }
  policy = {
    allowInsecureHttp: (options.allowInsecureHttp ?? false) || process.env.FEDIT_ALLOW_INSECURE_HTTP === '1',
    ca,
  };
}

export function connectionPolicy(): Readonly<ConnectionPolicy> {
  return policy;
}

/** True for names and addresses that can only mean this computer. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host);
  return false;
}

/**
 * Throws FEDERATION_INSECURE_URL for plain http:// to a host that is not this computer, unless
 * the policy allows it; the message says how to connect safely or to allow it.
 */
export function checkCoordinatorUrl(url: string, current: ConnectionPolicy = policy): void {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' || current.allowInsecureHttp || isLoopbackHost(parsed.hostname)) return;
  throw new FederationError(
    'FEDERATION_INSECURE_URL',
    `refusing plain http:// to ${parsed.host}: anyone on the way could read or change what is sent. Ask the operator for an https:// invite, or, on a network you trust, pass --allow-insecure-http (FEDIT_ALLOW_INSECURE_HTTP=1 for the app)`,
    { field: 'url' },
  );
}

/** The TLS options socket.io-client passes on to its websocket (the extra CA, if any). */
export function tlsOptions(current: ConnectionPolicy = policy): { ca?: string } {
  return current.ca === undefined ? {} : { ca: current.ca };
}
