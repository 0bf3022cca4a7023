// http-body: a check that GETs a URL on the trial boot and passes when the answer has the
// expected status and, if asked, contains a piece of text.
//
// Config ([plugins.NAME.config]):
//
// | key          | default | meaning                                                  |
// |--------------|---------|----------------------------------------------------------|
// | `url`        | -       | the URL to GET; the operator must also allow it (`http`) |
// | `status`     | `200`   | the status the answer must have                          |
// | `contains`   | unset   | text the body must contain (bodies are cut at 64 KiB)    |
// | `timeout_ms` | `2000`  | how long the GET may take                                |

import { get } from 'airlock:plugin/config@0.1.0';
import { log } from 'airlock:plugin/log@0.1.0';
import { httpGet } from 'airlock:plugin/probes@0.1.0';

/** A number from the config, or the default; throws a readable reason. */
function number(key, fallback) {
  const text = get(key);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) {
    throw `config: ${key} must be a whole number, not ${JSON.stringify(text)}`;
  }
  return value;
}

/** Why the device is not healthy, or null when it is. */
function unhealthy() {
  const url = get('url');
  if (url === undefined) return 'config: set url (the URL to GET)';
  const status = number('status', 200);
  const timeoutMs = number('timeout_ms', 2000);
  const contains = get('contains');
  let response;
  try {
    response = httpGet(url, timeoutMs);
  } catch (e) {
    return `GET ${url}: ${e.payload ?? e}`;
  }
  if (response.status !== status) {
    return `GET ${url} answered status ${response.status}, expected ${status}`;
  }
  if (contains !== undefined) {
    const body = new TextDecoder().decode(response.body);
    if (!body.includes(contains)) {
      return `GET ${url} answered status ${status} but its body does not contain ${JSON.stringify(contains)}`;
    }
  }
  return null;
}

export function check(ctx) {
  let reason;
  try {
    reason = unhealthy();
  } catch (e) {
    reason = String(e);
  }
  if (reason === null) {
    log('info', `${ctx.bundle.name} ${ctx.bundle.version} on slot ${ctx.slot ?? '-'} is healthy`);
    return { tag: 'pass' };
  }
  log('warn', reason);
  return { tag: 'fail', val: reason };
}
