/** A start-up failure the operator can fix; printed as one message, without a stack trace. */
export class StackError extends Error {
  override name = 'StackError';
}
