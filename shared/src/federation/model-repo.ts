// Where a federation's base model can be downloaded: a Hugging Face Hub repository and revision,
// written `owner/name` or `owner/name@revision` (as `fedit model fetch` and `coordinator init
// --model-repo` take it). The federation pins the model by its identity (the hash of its config and
// weights); the repository only says where to get the bytes, so a participant still checks what it
// downloaded against the identity. A revision that is a commit hash names the same files forever; a
// branch (main) may move, and then the download no longer has the identity the federation pins.

import { FeditError } from '../errors.ts';

/** A Hub repository id: owner and name, each of letters, digits, `.`, `_` and `-` (the Hub's rule). */
export const MODEL_REPO_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
/** A git revision: a commit hash, branch or tag (no `..`, no leading `-`, no spaces). */
export const MODEL_REVISION_PATTERN = /^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$/;
/** A full git commit hash: the one kind of revision that cannot move. */
export const COMMIT_HASH_PATTERN = /^[0-9a-f]{40}$/;

export interface ModelRepo {
  /** owner/name on the Hub. */
  repo: string;
  /** A commit hash (reproducible), branch or tag; absent: the repository's main branch. */
  revision?: string;
}

/** `owner/name` or `owner/name@revision`; throws a FeditError that names `field`. */
export function parseModelRepo(text: string, field = 'repository'): ModelRepo {
  const at = text.indexOf('@');
  const repo = at < 0 ? text : text.slice(0, at);
  const revision = at < 0 ? undefined : text.slice(at + 1);
  if (!MODEL_REPO_PATTERN.test(repo))
    throw new FeditError(
      'MODEL_REPO',
      `${field} must be a Hugging Face repository id such as HuggingFaceTB/SmolLM2-135M-Instruct, optionally followed by @revision; got ${JSON.stringify(text)}`,
    );
  if (revision !== undefined && !MODEL_REVISION_PATTERN.test(revision))
    throw new FeditError(
      'MODEL_REPO',
      `${field}: the revision after @ must be a commit hash, branch or tag; got ${JSON.stringify(revision)}`,
    );
  return revision === undefined ? { repo } : { repo, revision };
}

/** The inverse of parseModelRepo. */
export function formatModelRepo(m: ModelRepo): string {
  return m.revision === undefined ? m.repo : `${m.repo}@${m.revision}`;
}

/** Whether the revision names fixed files (a full commit hash), not a branch or tag that may move. */
export function isPinnedRevision(revision: string | undefined): boolean {
  return revision !== undefined && COMMIT_HASH_PATTERN.test(revision);
}
