// The desktop app's view of the participant's identity (core/federation/identity-file.ts): its
// fingerprint, how identity.json is protected, and, when it is sealed by the OS keychain, the
// opened identity the training worker is handed (a utilityProcess has no safeStorage of its own).
// The main process installs the keychain (useIdentityProtector) before the backend opens; a plain
// identity file written earlier (by the CLI, or before a keychain was available) is sealed here.

import { fingerprint, publicIdentity, serializeIdentity, type SerializedIdentity } from '@fedit/shared';
import type { IdentityProtection } from '../core/federation/identity-file.ts';
import { loadOrCreateIdentity, protectIdentityFile, readIdentity } from '../core/federation/store.ts';
import type { AppLog } from './app-log.ts';

export class AppIdentity {
  /** The fingerprint; undefined before the identity is made. */
  fingerprint: string | undefined;
  protection: IdentityProtection | undefined;
  #sealed: SerializedIdentity | undefined;

  constructor(
    private readonly home: string,
    private readonly log: AppLog,
  ) {}

  /** Reads the identity there is (sealing a plain file when the keychain works). */
  async load(): Promise<void> {
    this.protection = await protectIdentityFile(this.home);
    const identity = await readIdentity(this.home);
    this.#keep(identity && { identity, created: false });
  }

  /** Makes the identity (sealed when the keychain works), or reads the one there is. */
  async create(): Promise<void> {
    this.#keep(await loadOrCreateIdentity(this.home));
    this.protection = await protectIdentityFile(this.home);
  }

  /** The opened identity for the training worker when the file is sealed; undefined otherwise. */
  forWorker(): SerializedIdentity | undefined {
    return this.protection === 'os-keychain' ? this.#sealed : undefined;
  }

  #keep(read: Awaited<ReturnType<typeof loadOrCreateIdentity>> | undefined): void {
    if (!read) return;
    this.fingerprint = fingerprint(publicIdentity(read.identity));
    this.#sealed = serializeIdentity(read.identity);
    if (read.created) this.log.info(`identity created: ${this.fingerprint}`);
  }
}
