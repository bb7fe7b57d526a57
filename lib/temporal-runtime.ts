import { DefaultLogger, type LogLevel, Runtime } from '@temporalio/worker';

let installed = false;

/** Where the worker runtime serves its own Prometheus metrics (LIFEBOAT_WORKER_METRICS_*). */
export interface WorkerMetricsOptions {
  port?: number | undefined;
  host?: string | undefined;
}

/**
 * Install the worker runtime once per process with a quieter logger than the SDK's INFO default,
 * and, given a port, the SDK's Prometheus exporter (http://host:port/metrics).
 */
export function installTemporalRuntime(level: LogLevel = 'WARN', metrics: WorkerMetricsOptions = {}) {
  if (installed) return;
  installed = true;
  Runtime.install({
    logger: new DefaultLogger(level),
    ...(metrics.port
      ? {
          telemetryOptions: {
            metrics: {
              prometheus: { bindAddress: `${metrics.host ?? '127.0.0.1'}:${metrics.port}` },
              metricPrefix: 'temporal_',
            },
          },
        }
      : {}),
  });
}

/** The worker metrics settings of a loaded configuration. */
export const workerMetricsOf = (config: {
  LIFEBOAT_WORKER_METRICS_PORT?: number | undefined;
  LIFEBOAT_WORKER_METRICS_HOST: string;
}): WorkerMetricsOptions => ({
  port: config.LIFEBOAT_WORKER_METRICS_PORT,
  host: config.LIFEBOAT_WORKER_METRICS_HOST,
});
