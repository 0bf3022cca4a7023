// {{name}}: a hook that vetoes an update, before anything is downloaded, when the bundle's
// version is one of those in its config (`block`, comma-separated).

import { get } from 'airlock:plugin/config@{{wit_version}}';
import { log } from 'airlock:plugin/log@{{wit_version}}';

export function run(ctx) {
  if (ctx.stage !== 'download-enter') return { tag: 'proceed' };
  const block = get('block') ?? '';
  if (block.split(',').map((v) => v.trim()).includes(ctx.bundle.version)) {
    const reason = `version ${ctx.bundle.version} is blocked (block = ${block})`;
    log('warn', reason);
    return { tag: 'abort', val: reason };
  }
  return { tag: 'proceed' };
}
