import { StackError } from './errors';
import { waitFor } from './ports';
import type { ProcessGroup } from './processes';
import { venvBin } from './venv';

/** Start moto's server from .venv on loopback as the EC2 + EBS endpoint. */
export async function startMoto(group: ProcessGroup, port: number): Promise<string> {
  let exited: number | null | undefined;
  group.start('moto', venvBin('moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: 'false' },
    onExit: (code) => {
      exited = code;
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`moto server on ${url}`, async () => {
    if (exited !== undefined)
      throw new StackError(`moto_server exited (code ${exited}); see .data/logs/moto.log.`);
    const res = await fetch(`${url}/moto-api/data.json`);
    return res.ok;
  });
  return url;
}
