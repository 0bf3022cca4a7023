// {{name}}: a check that GETs the URL in its config (`url`) on the trial boot of a new
// release, and passes when it answers 200. The operator must also allow the URL (`http`).

import { get } from 'airlock:plugin/config@{{wit_version}}';
import { log } from 'airlock:plugin/log@{{wit_version}}';
import { httpGet } from 'airlock:plugin/probes@{{wit_version}}';

/** Why the device is not healthy, or null when it is. */
function unhealthy(ctx) {
  const url = get('url');
  if (url === undefined) return 'config: set url (the URL to GET)';
  let response;
  try {
    response = httpGet(url, 2000);
  } catch (e) {
    // An `err` of the probe arrives as an exception carrying it.
    return `GET ${url}: ${e.payload ?? e}`;
  }
  if (response.status !== 200) return `GET ${url} answered status ${response.status}, expected 200`;
  log('info', `${ctx.bundle.name} ${ctx.bundle.version} is healthy`);
  return null;
}

export function check(ctx) {
  const reason = unhealthy(ctx);
  if (reason === null) return { tag: 'pass' };
  log('warn', reason);
  return { tag: 'fail', val: reason };
}
