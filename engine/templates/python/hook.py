"""{{name}}: a hook that vetoes an update, before anything is downloaded, when the bundle's
version is one of those in its config (`block`, comma-separated)."""

import wit_world
from wit_world.imports import config, log, types


def is_blocked(version: str, block: str) -> bool:
    return version in (v.strip() for v in block.split(","))


class WitWorld(wit_world.WitWorld):
    def run(self, ctx: types.Context) -> types.HookResult:
        if ctx.stage != types.Stage.DOWNLOAD_ENTER:
            return types.HookResult_Proceed()
        block = config.get("block") or ""
        if is_blocked(ctx.bundle.version, block):
            reason = f"version {ctx.bundle.version} is blocked (block = {block})"
            log.log(log.Level.WARN, reason)
            return types.HookResult_Abort(reason)
        return types.HookResult_Proceed()
