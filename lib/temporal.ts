import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from '@temporalio/client';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { type Config, temporalAddress } from './config';

/**
 * Connection options shared by the client (API, CLI, scripts) and the workers. The same
 * settings reach a dev server, a self-hosted cluster with mTLS, or Temporal Cloud (API key).
 */
export async function temporalConnectionOptions(
  config: Config,
): Promise<ConnectionOptions & NativeConnectionOptions> {
  const tlsWanted =
    config.TEMPORAL_TLS ??
    Boolean(config.TEMPORAL_TLS_CERT_PATH || config.TEMPORAL_API_KEY || config.TEMPORAL_TLS_CA_PATH);
  let tls: ConnectionOptions['tls'];
  if (tlsWanted) {
    tls = {
      ...(config.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: config.TEMPORAL_TLS_SERVER_NAME } : {}),
      ...(config.TEMPORAL_TLS_CA_PATH
        ? { serverRootCACertificate: await readFile(config.TEMPORAL_TLS_CA_PATH) }
        : {}),
      ...(config.TEMPORAL_TLS_CERT_PATH && config.TEMPORAL_TLS_KEY_PATH
        ? {
            clientCertPair: {
              crt: await readFile(config.TEMPORAL_TLS_CERT_PATH),
              key: await readFile(config.TEMPORAL_TLS_KEY_PATH),
            },
          }
        : {}),
    };
  }
  return {
    address: temporalAddress(config),
    ...(tls ? { tls } : {}),
    ...(config.TEMPORAL_API_KEY ? { apiKey: config.TEMPORAL_API_KEY } : {}),
  };
}

export function temporalUiUrl(config: Config): string | undefined {
  if (config.TEMPORAL_UI_URL) return config.TEMPORAL_UI_URL;
  if (config.TEMPORAL_ADDRESS) return undefined;
  return `http://127.0.0.1:${config.TEMPORAL_UI_PORT}/namespaces/${config.TEMPORAL_NAMESPACE}/workflows`;
}
