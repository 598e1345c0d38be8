/**
 * Which offsets of one partition a consumer has finished, and so how far it may commit. Events of
 * a partition are handled concurrently (different keys), finishing out of order; the group's
 * position may only move past an offset once it and every earlier one are finished, or a crash
 * would lose the unfinished ones. Internal to the Kafka adapter.
 */
export class PartitionProgress {
  /** Offsets received and not yet committable, in the order received (ascending). */
  private readonly outstanding: bigint[] = [];
  private readonly finished = new Set<bigint>();
  private highest = -1n;
  private committable: bigint | undefined;
  private committed: bigint | undefined;

  /**
   * Records a received offset. Resolves `false` for an offset already received (the library
   * fetches again from the committed offset after a rebalance): it is being handled or finished.
   */
  receive(offset: bigint): boolean {
    if (offset <= this.highest) return false;
    this.highest = offset;
    this.outstanding.push(offset);
    return true;
  }

  /** Marks an offset handled (acknowledged, skipped or dead-lettered). */
  finish(offset: bigint): void {
    this.finished.add(offset);
    while (this.outstanding.length > 0 && this.finished.has(this.outstanding[0]!)) {
      const next = this.outstanding.shift()!;
      this.finished.delete(next);
      this.committable = next;
    }
  }

  /** The last offset that may be committed (every offset up to it is finished) and is not yet, if any. */
  toCommit(): bigint | undefined {
    return this.committable !== undefined && this.committable !== this.committed ? this.committable : undefined;
  }

  /** Records that `offset` was committed. */
  markCommitted(offset: bigint): void {
    if (this.committed === undefined || offset > this.committed) this.committed = offset;
  }

  /** Offsets received and not finished. */
  get pending(): number {
    return this.outstanding.length - this.finished.size;
  }
}
