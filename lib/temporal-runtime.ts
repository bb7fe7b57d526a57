import { DefaultLogger, type LogLevel, Runtime } from '@temporalio/worker';

let installed = false;

/** Install the worker runtime once per process with a quieter logger than the SDK's INFO default. */
export function installTemporalRuntime(level: LogLevel = 'WARN') {
  if (installed) return;
  installed = true;
  Runtime.install({ logger: new DefaultLogger(level) });
}
