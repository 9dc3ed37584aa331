// Removing the blobs no record names (shared/src/store/orphans.ts): at start, once a round left
// open by a crash is aborted, and after every round, so aborted rounds' updates and updates that
// arrived after the quorum do not stay on disk. It runs only while no round is open: then every
// blob that will ever count is named by the log (an update counts only in the round it was
// begun in, and the next round opens after the sweep).

import { orphanBlobs, readRoundLog, type BlobStore, type FederationPaths } from '@fedit/shared';

/**
 * Removes the blobs the round log does not name; returns their hashes. Housekeeping: a failure
 * (the folder gone while the coordinator stops, a file system error) is reported, never fatal.
 */
export async function removeOrphanBlobs(paths: FederationPaths, blobs: BlobStore): Promise<string[]> {
  try {
    // Read from the file, not a copy in memory: what is on disk is what an auditor will check.
    const { records } = await readRoundLog(paths.log);
    const orphans = orphanBlobs(blobs, records);
    for (const hash of orphans) blobs.remove(hash);
    return orphans;
  } catch (err) {
    console.error(`fedit coordinator: could not remove unreferenced blobs: ${(err as Error).message}`);
    return [];
  }
}
