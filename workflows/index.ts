// The workflow bundle's entry: every workflow type the control worker runs.
export * from './self-check';
