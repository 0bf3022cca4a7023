// go-no-go: a hook that asks the operator's go/no-go endpoint before an update starts (at
// `download-enter`; every other stage proceeds). A fleet-wide stop switch: flip the document
// the URL serves and every device holds its updates.
//
// The endpoint answers status 200 with a body of
//
// - `go`                  the update proceeds;
// - `no-go` or `no-go: REASON`  the update is aborted, with the reason;
//
// anything else (another status, another body, no answer) postpones the update: the hook asks
// the engine to try again after `retry` seconds, so that an unreachable endpoint never lets an
// update through, nor fails it for good.
//
// Config ([plugins.NAME.config]):
//
// | key          | default | meaning                                                  |
// |--------------|---------|----------------------------------------------------------|
// | `url`        | -       | the go/no-go URL; the operator must also allow it (`http`) |
// | `retry`      | `300`   | seconds to wait when the answer is not a clear go or no-go |
// | `timeout_ms` | `2000`  | how long the GET may take                                |

import { get } from 'airlock:plugin/config@0.1.0';
import { log } from 'airlock:plugin/log@0.1.0';
import { httpGet } from 'airlock:plugin/probes@0.1.0';

function number(key, fallback) {
  const text = get(key);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw `config: ${key} must be a whole number, not ${JSON.stringify(text)}`;
  }
  return value;
}

function decide(ctx) {
  const url = get('url');
  if (url === undefined) return { tag: 'abort', val: 'config: set url (the go/no-go URL)' };
  const retry = number('retry', 300);
  const timeoutMs = number('timeout_ms', 2000);
  const later = (why) => {
    log('warn', `${why}; trying again in ${retry} s`);
    return { tag: 'retry-later', val: retry };
  };
  let response;
  try {
    response = httpGet(url, timeoutMs);
  } catch (e) {
    return later(`GET ${url}: ${e.payload ?? e}`);
  }
  if (response.status !== 200) return later(`GET ${url} answered status ${response.status}`);
  const answer = new TextDecoder().decode(response.body).trim();
  if (answer === 'go') {
    log('info', `${url} says go for ${ctx.bundle.name} ${ctx.bundle.version}`);
    return { tag: 'proceed' };
  }
  const noGo = /^no-go(?::\s*(.*))?$/s.exec(answer);
  if (noGo) {
    const reason = noGo[1] ? noGo[1].trim() : 'no reason given';
    return { tag: 'abort', val: `${url} says no-go: ${reason}` };
  }
  return later(`GET ${url} answered neither go nor no-go (${JSON.stringify(answer.slice(0, 80))})`);
}

export function run(ctx) {
  if (ctx.stage !== 'download-enter') return { tag: 'proceed' };
  try {
    return decide(ctx);
  } catch (e) {
    return { tag: 'abort', val: String(e) };
  }
}
