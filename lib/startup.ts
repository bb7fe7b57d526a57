import { type Config, ConfigError, loadConfig } from './config';
import { KeyringError } from './crypto/keyring';

/**
 * For entry points (API, workers, `npm start`): a bad setting or an unusable keyring ends the
 * process with one line naming the problem (the error already names the variable or the file),
 * exit code 1, no stack trace. Anything else is rethrown as it is.
 */
export function refuseToStart(e: unknown): never {
  if (e instanceof KeyringError || e instanceof ConfigError) {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  }
  throw e;
}

/**
 * The configuration of an entry point, loaded before anything else (its logger reads it too):
 * a bad setting ends the process with the lines naming each variable, exit code 1, no stack trace.
 */
export function startupConfig(): Config {
  try {
    return loadConfig();
  } catch (e) {
    return refuseToStart(e);
  }
}
