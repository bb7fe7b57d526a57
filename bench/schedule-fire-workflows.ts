/** The workflow `bench schedule-fire` starts: nothing but its start and completion. */
export async function emptyWorkflow(): Promise<void> {}
