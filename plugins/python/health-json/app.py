"""health-json: a check that GETs a JSON health document on the trial boot and passes when one
of its fields holds the expected value (`{"status": "ok"}` by default).

Config (`[plugins.NAME.config]`):

| key          | default  | meaning                                                     |
|--------------|----------|-------------------------------------------------------------|
| `url`        | -        | the URL to GET; the operator must also allow it (`http`)    |
| `field`      | `status` | the top-level field of the JSON object to look at           |
| `expect`     | `ok`     | the value it must hold (compared as text)                   |
| `timeout_ms` | `2000`   | how long the GET may take                                   |

The operator allows the URL in `airlock.toml` (`http = ["http://127.0.0.1:8080/health"]`);
nothing else is reachable.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log, probes, types


def setting(key: str, default: str) -> str:
    value = config.get(key)
    return default if value is None else value


def verdict() -> str | None:
    """None when healthy, otherwise why not."""
    url = config.get("url")
    if url is None:
        return "config: set url (the health URL to GET)"
    field = setting("field", "status")
    expect = setting("expect", "ok")
    try:
        timeout_ms = int(setting("timeout_ms", "2000"))
    except ValueError:
        return f"config: timeout_ms must be a number of milliseconds, not {config.get('timeout_ms')!r}"
    try:
        response = probes.http_get(url, timeout_ms)
    except Err as e:
        return f"GET {url}: {e.value}"
    if response.status != 200:
        return f"GET {url} answered status {response.status}, expected 200"
    try:
        document = json.loads(bytes(response.body))
    except ValueError as e:
        return f"GET {url}: the body is not JSON ({e})"
    if not isinstance(document, dict):
        return f"GET {url}: the body is JSON but not an object"
    if field not in document:
        return f"GET {url}: the JSON has no field {field!r}"
    actual = document[field]
    if str(actual) != expect:
        return f"GET {url}: {field} is {actual!r}, expected {expect!r}"
    return None


class WitWorld(wit_world.WitWorld):
    def check(self, ctx: types.Context) -> types.CheckResult:
        reason = verdict()
        if reason is None:
            log.log(log.Level.INFO, f"{ctx.bundle.name} {ctx.bundle.version} is healthy")
            return types.CheckResult_Pass()
        log.log(log.Level.WARN, reason)
        return types.CheckResult_Fail(reason)
