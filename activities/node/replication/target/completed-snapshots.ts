/**
 * The snapshots a node worker saw `completed`, and when: an incremental's parent seen completed
 * within the last `ttlMs` is not described again. An EBS snapshot that is completed stays so
 * until it is deleted; Lifeboat deletes its snapshots only through the expiry job, which never
 * deletes one a recorded point still holds (activities/control/expiry). So the check guards only
 * against a deletion outside Lifeboat, and asking once per `ttlMs` instead of once per iteration
 * keeps a node of 1,000 one-minute plans from spending the account's EC2 `Describe*` budget
 * (a bucket of about 100 calls refilled at about 20 a second, AWS "Request throttling for the
 * Amazon EC2 API") on a question whose answer does not change.
 *
 * Seen completed: DescribeSnapshots said so, or the node's own CompleteSnapshot was followed to
 * `completed`. Forgotten: when DescribeSnapshots says otherwise, and when a StartSnapshot naming it
 * as the parent fails (the retry describes it again and copies in full if it is gone).
 * `ttlMs` 0 turns the cache off (every iteration describes its parent).
 */
export class CompletedSnapshots {
  private readonly seenAt = new Map<string, number>();

  constructor(
    readonly ttlMs: number,
    /** At most this many ids are kept (the oldest go first): about 100 bytes each. */
    private readonly maxEntries = 100_000,
  ) {}

  /** Whether the snapshot was seen completed less than `ttlMs` ago. */
  fresh(snapshotId: string, now = Date.now()): boolean {
    const at = this.seenAt.get(snapshotId);
    return at !== undefined && now - at < this.ttlMs;
  }

  /** The snapshot was seen completed now. */
  seen(snapshotId: string, now = Date.now()): void {
    if (this.ttlMs <= 0) return;
    // Re-inserted so that the map's order is the order of sightings (the oldest is evicted first).
    this.seenAt.delete(snapshotId);
    this.seenAt.set(snapshotId, now);
    if (this.seenAt.size > this.maxEntries) {
      const oldest = this.seenAt.keys().next().value;
      if (oldest !== undefined) this.seenAt.delete(oldest);
    }
  }

  forget(snapshotId: string): void {
    this.seenAt.delete(snapshotId);
  }
}
