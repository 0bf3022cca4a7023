"""{{name}}: a check that GETs the URL in its config (`url`) on the trial boot of a new release,
and passes when it answers 200. The operator must also allow the URL (`http`)."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log, probes, types


def unhealthy(ctx: types.Context) -> str | None:
    """None when healthy, otherwise why not."""
    url = config.get("url")
    if url is None:
        return "config: set url (the URL to GET)"
    try:
        response = probes.http_get(url, 2000)
    except Err as e:
        return f"GET {url}: {e.value}"
    if response.status != 200:
        return f"GET {url} answered status {response.status}, expected 200"
    log.log(log.Level.INFO, f"{ctx.bundle.name} {ctx.bundle.version} is healthy")
    return None


class WitWorld(wit_world.WitWorld):
    def check(self, ctx: types.Context) -> types.CheckResult:
        reason = unhealthy(ctx)
        if reason is None:
            return types.CheckResult_Pass()
        log.log(log.Level.WARN, reason)
        return types.CheckResult_Fail(reason)
