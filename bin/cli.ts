import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { loadCliConfig } from '../lib/config';

/**
 * What every command module gets: the API client (server and token from the global options or
 * the environment), output helpers that honour --json, and the documented exit codes.
 */
export const EXIT = {
  ok: 0,
  /** Bad usage, an invalid file, or the API rejected the input (400/415/422). */
  usage: 1,
  notFound: 2,
  /** 409 conflict or 412 stale If-Match. */
  conflict: 3,
  /** 401 or 403. */
  auth: 4,
  /** 5xx, or the API cannot be reached. */
  server: 5,
} as const;

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    readonly issues: { path: string; message: string }[] = [],
    readonly body?: unknown,
  ) {
    super(message);
  }
}

function exitCodeFor(status: number): number {
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 404) return EXIT.notFound;
  if (status === 409 || status === 412) return EXIT.conflict;
  if (status >= 500) return EXIT.server;
  return EXIT.usage;
}

export interface ApiResponse<T> {
  status: number;
  etag: string | null;
  body: T;
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  // biome-ignore lint/suspicious/noExplicitAny: answers are JSON the commands pick fields from
  async request<T = any>(
    method: string,
    path: string,
    opts: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    const url = `${this.baseUrl.replace(/\/+$/, '')}${path}`;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new CliError(EXIT.server, `Cannot reach the Lifeboat API at ${this.baseUrl} (${cause})`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (!res.ok) {
      const err = (body ?? {}) as { message?: string; issues?: { path: string; message: string }[] };
      const message = typeof err.message === 'string' ? err.message : `HTTP ${res.status}`;
      let hint = '';
      if (res.status === 401 && !this.token) hint = ' (give --token or set LIFEBOAT_TOKEN)';
      throw new CliError(exitCodeFor(res.status), `${message}${hint}`, err.issues ?? [], body);
    }
    return { status: res.status, etag: res.headers.get('etag'), body: body as T };
  }

  /**
   * Follow a Server-Sent Events stream: calls `onEvent` with each message's data until the
   * stream ends or `signal` aborts (Ctrl-C). An error answer is a CliError like `request`'s.
   */
  async follow(path: string, onEvent: (data: string) => void, signal?: AbortSignal): Promise<void> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const url = `${this.baseUrl.replace(/\/+$/, '')}${path}`;
    let res: Response;
    try {
      res = await fetch(url, { headers, ...(signal ? { signal } : {}) });
    } catch (e) {
      if (signal?.aborted) return;
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new CliError(EXIT.server, `Cannot reach the Lifeboat API at ${this.baseUrl} (${cause})`);
    }
    if (!res.ok || !res.body) {
      const text = await res.text();
      let body: { message?: string; issues?: { path: string; message: string }[] } = {};
      try {
        body = JSON.parse(text);
      } catch {}
      throw new CliError(
        exitCodeFor(res.status),
        body.message ?? `HTTP ${res.status}`,
        body.issues ?? [],
        body,
      );
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, ''))
            .join('\n');
          if (data) onEvent(data);
          end = buffer.indexOf('\n\n');
        }
      }
    } catch (e) {
      if (!signal?.aborted)
        throw new CliError(EXIT.server, `The event stream broke: ${(e as Error).message}`);
    }
  }
}

export interface GlobalOptions {
  server?: string;
  token?: string;
  json?: boolean;
}

export interface Cli {
  /** The API client for the global --server/--token (or LIFEBOAT_URL/LIFEBOAT_TOKEN). */
  api(): ApiClient;
  /** Whether --json was given. */
  json(): boolean;
  /** Print a value as JSON (for --json) or the human rendering. */
  print(value: unknown, human: () => string): void;
}

export function createCli(program: Command): Cli {
  const opts = () => program.opts<GlobalOptions>();
  return {
    api: () =>
      new ApiClient(
        opts().server ?? loadCliConfig().LIFEBOAT_URL,
        opts().token ?? loadCliConfig().LIFEBOAT_TOKEN,
      ),
    json: () => Boolean(opts().json),
    print(value, human) {
      process.stdout.write(opts().json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
    },
  };
}

/** A command module registers its commands on the program: one line in bin/lifeboat.ts. */
export type CommandModule = (program: Command, cli: Cli) => void;

type Cell = string | number | boolean | null | undefined;

/** Columns padded to their widest cell. */
/** One line: line breaks (and the blanks around them) become one space. */
export const oneLine = (s: string) => s.replace(/[ \t]*[\r\n]+[ \t]*/g, ' ');

/** At most `max` characters, the rest replaced by "…". */
export const truncate = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

/** A table, one line per row (a multi-line cell, e.g. an error, is joined into one line). */
export function table(headers: string[], rows: Cell[][]): string {
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : oneLine(String(c))))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const lines = cells.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  return rows.length === 0 ? `${lines[0]}\n(none)` : lines.join('\n');
}

/** The next-page hint under a paginated list. */
export const moreHint = (page: { nextOffset: number | null }) =>
  page.nextOffset === null ? '' : `\n(more: --offset ${page.nextOffset})`;

/** Read a YAML or JSON document from a file (`-` = stdin). */
export function readDocument(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new CliError(EXIT.usage, `Cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    // YAML merge keys (`<<: *net`) are applied, not kept as a key named "<<".
    return parseYaml(text, { merge: true });
  } catch (e) {
    throw new CliError(EXIT.usage, `${file} is not valid YAML or JSON: ${(e as Error).message}`);
  }
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The id of a site or plan given by id or by name (exit 2 when no such name). */
export async function resolveId(api: ApiClient, collection: 'sites' | 'plans', ref: string): Promise<string> {
  if (UUID.test(ref)) return ref;
  const page = await api.request<{ items: { id: string }[] }>(
    'GET',
    `/v1/${collection}?name=${encodeURIComponent(ref)}&limit=1`,
  );
  const hit = page.body.items[0];
  if (!hit) throw new CliError(EXIT.notFound, `No ${collection.slice(0, -1)} named "${ref}"`);
  return hit.id;
}

export const intOption = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new CliError(EXIT.usage, `not a whole number: ${v}`);
  return n;
};

export const query = (params: Record<string, string | number | boolean | undefined>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== false) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
};

/** A page of a paginated list, as the API answers it. */
export interface Page<T> {
  items: T[];
  nextOffset: number | null;
}

/** `command('list')` as the group's default subcommand. */
export const listCommand = (group: Command, description: string) =>
  group.command('list', { isDefault: true }).description(description);

/** `command('list')` for a paginated list: the given options, then --limit and --offset. */
export const pagedListCommand = (group: Command, description: string, options: [string, string][] = []) =>
  pageOptions(options.reduce((c, [flags, help]) => c.option(flags, help), listCommand(group, description)));

/** The --limit/--offset options of a paginated list. */
export const pageOptions = (command: Command) =>
  command.option('--limit <n>', 'page size', intOption).option('--offset <n>', 'skip this many', intOption);

/** GET one page of a list. */
export async function getPage<T>(api: ApiClient, path: string): Promise<Page<T>> {
  return (await api.request<Page<T>>('GET', path)).body;
}

/** A page as a table with the next-page hint under it (or the page as JSON for --json). */
export function printPage<T>(cli: Cli, page: Page<T>, headers: string[], row: (item: T) => Cell[]): void {
  cli.print(page, () => table(headers, page.items.map(row)) + moreHint(page));
}

/** A resource read back whole: JSON either way. */
export const printDocument = (cli: Cli, body: unknown) =>
  cli.print(body, () => JSON.stringify(body, null, 2));

/** The If-Match header for `--if-match <version>`. */
export const ifMatchHeader = (version: string | undefined): Record<string, string> =>
  version ? { 'if-match': `"${version}"` } : {};

/** `<group> get <noun>`: one resource (`/v1/<noun>s/{id}`) by name or id, printed whole. */
export const getCommand = (
  cli: Cli,
  group: Command,
  noun: string,
  description: string,
  idOf: (api: ApiClient, ref: string) => Promise<string>,
) =>
  group
    .command(`get <${noun}>`)
    .description(description)
    .action(async (ref: string) => {
      const api = cli.api();
      printDocument(cli, (await api.request('GET', `/v1/${noun}s/${await idOf(api, ref)}`)).body);
    });

/** `<group> create -f FILE`: POST the document to `/v1/<noun>s` and say what was created. */
export const createCommand = (cli: Cli, group: Command, noun: string) =>
  group
    .command('create')
    .description(`Create a ${noun} from a YAML or JSON file`)
    .requiredOption('-f, --file <file>', `the ${noun} document (- for stdin)`)
    .action(async (o: { file: string }) => {
      const { body } = await cli
        .api()
        .request<{ id: string; name: string }>('POST', `/v1/${noun}s`, { body: readDocument(o.file) });
      cli.print(body, () => `${noun} "${body.name}" created (${body.id})`);
    });

/** DELETE `path` and say so (`--json`: `{ deleted: id }`). */
export async function deleteAndSay(
  cli: Cli,
  api: ApiClient,
  path: string,
  id: string,
  said: string,
  ifMatch?: string,
): Promise<void> {
  await api.request('DELETE', path, { headers: ifMatchHeader(ifMatch) });
  cli.print({ deleted: id }, () => said);
}
