import { rm } from 'node:fs/promises';
import { indexPath } from './hash-index';

/**
 * Delete the block-hash index files of deleted recovery points on this node (the expiry job).
 * Idempotent: a file already gone counts as done.
 */
export async function deleteBlockIndexFiles(
  dataDir: string,
  nodeId: string,
  items: { recoveryPointId: string; diskId: string }[],
): Promise<{ nodeId: string; deleted: number }> {
  for (const i of items) await rm(indexPath(dataDir, nodeId, i.diskId, i.recoveryPointId), { force: true });
  return { nodeId, deleted: items.length };
}
