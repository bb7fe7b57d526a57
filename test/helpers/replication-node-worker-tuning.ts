/** Tuning of the kill-and-resume test's node worker, shared by the worker script and the test. */
export const RESUME_TEST_TUNING = {
  perSnapshotConcurrency: 4,
  heartbeatEveryBlocks: 8,
  heartbeatIntervalMs: 1000,
  /** Reverse transfers read this many blocks at once (parallel, yet slow enough to kill mid-way). */
  reverseReadConcurrency: 4,
};
