import type { Command } from 'commander';
import {
  type ApiClient,
  type Cli,
  CliError,
  createCommand,
  deleteAndSay,
  EXIT,
  getCommand,
  getPage,
  ifMatchHeader,
  intOption,
  pagedListCommand,
  printPage,
  query,
  readDocument,
  table,
  UUID,
} from '../cli';

interface Channel {
  id: string;
  name: string;
  kind: string;
  enabled: boolean;
  filters: { types?: string[]; minSeverity?: string; plans?: string[] };
  secretSet: boolean;
  version: number;
}
interface Delivery {
  at: string;
  eventId: number;
  eventType: string;
  status: string;
  attempt: number;
  httpStatus: number | null;
  response: string | null;
  error: string | null;
}

const filterText = (f: Channel['filters']) =>
  [
    f.types?.length ? `types=${f.types.join(',')}` : '',
    f.minSeverity ? `severity>=${f.minSeverity}` : '',
    f.plans?.length ? `plans=${f.plans.join(',')}` : '',
  ]
    .filter(Boolean)
    .join(' ') || 'all';

/** A channel by id or by name. */
async function channelId(api: ApiClient, ref: string): Promise<string> {
  if (UUID.test(ref)) return ref;
  const page = await api.request<{ items: Channel[] }>('GET', '/v1/channels?limit=500');
  const hit = page.body.items.find((c) => c.name === ref);
  if (!hit) throw new CliError(EXIT.notFound, `No channel named "${ref}"`);
  return hit.id;
}

/** `lifeboat channels list|get|create|update|delete|test|deliveries` (admin) */
export function channelCommands(program: Command, cli: Cli) {
  const channels = program
    .command('channels')
    .description('Notification channels: webhook, Slack, PagerDuty, email (admin)');

  pagedListCommand(channels, 'List channels (secrets are never shown: SECRET says whether one is set)', [
    ['--kind <kind>', 'webhook, slack, pagerduty or email'],
  ]).action(async (o) => {
    const page = await getPage<Channel>(
      cli.api(),
      `/v1/channels${query({ kind: o.kind, limit: o.limit, offset: o.offset })}`,
    );
    printPage(cli, page, ['NAME', 'KIND', 'ENABLED', 'FILTERS', 'SECRET', 'ID'], (c) => [
      c.name,
      c.kind,
      c.enabled,
      filterText(c.filters),
      c.secretSet ? 'set' : '-',
      c.id,
    ]);
  });

  getCommand(cli, channels, 'channel', 'Show a channel (by name or id)', channelId);
  createCommand(cli, channels, 'channel');

  channels
    .command('update <channel>')
    .description('Replace a channel from a file (leave the secret out to keep the stored one)')
    .requiredOption('-f, --file <file>', 'the whole channel document (- for stdin)')
    .option('--if-match <version>', 'only if the channel is still at this version')
    .action(async (ref: string, o) => {
      const api = cli.api();
      const id = await channelId(api, ref);
      const { body } = await api.request<Channel>('PUT', `/v1/channels/${id}`, {
        body: readDocument(o.file),
        headers: ifMatchHeader(o.ifMatch),
      });
      cli.print(body, () => `channel "${body.name}" updated (version ${body.version})`);
    });

  channels
    .command('delete <channel>')
    .description('Delete a channel and its delivery log')
    .action(async (ref: string) => {
      const api = cli.api();
      const id = await channelId(api, ref);
      await deleteAndSay(cli, api, `/v1/channels/${id}`, id, `channel "${ref}" deleted`);
    });

  channels
    .command('test <channel>')
    .description('Send a channel.test event to this channel only and show how the delivery went')
    .action(async (ref: string) => {
      const api = cli.api();
      const id = await channelId(api, ref);
      const { body } = await api.request<{
        eventId: number;
        delivery: { status: string; httpStatus?: number; response?: string; error?: string };
      }>('POST', `/v1/channels/${id}/test`);
      const d = body.delivery;
      cli.print(body, () =>
        [
          `test event ${body.eventId}: ${d.status}`,
          d.httpStatus ? `HTTP ${d.httpStatus}` : '',
          d.response ? `answer: ${d.response}` : '',
          d.error ? `error: ${d.error}` : '',
        ]
          .filter(Boolean)
          .join('\n'),
      );
      if (d.status !== 'succeeded') process.exitCode = EXIT.server;
    });

  channels
    .command('deliveries <channel>')
    .description('The last delivery attempts to a channel, newest first')
    .option('--limit <n>', 'how many', intOption)
    .action(async (ref: string, o) => {
      const api = cli.api();
      const id = await channelId(api, ref);
      const { body } = await api.request<{ items: Delivery[] }>(
        'GET',
        `/v1/channels/${id}/deliveries${query({ limit: o.limit })}`,
      );
      cli.print(body, () =>
        table(
          ['TIME', 'EVENT', 'TYPE', 'STATUS', 'ATTEMPT', 'ANSWER', 'ERROR'],
          body.items.map((d) => [
            d.at,
            d.eventId,
            d.eventType,
            d.status,
            d.attempt,
            d.httpStatus ?? d.response ?? '',
            d.error ?? '',
          ]),
        ),
      );
    });
}
