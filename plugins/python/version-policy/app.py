"""version-policy: a hook that vetoes releases the operator does not want on the device, before
anything is downloaded (at `download-enter`; every other stage proceeds).

It aborts the update when the bundle's version

- is listed in `deny` (a release known to be bad), or
- is older than the release the device runs, unless `allow_downgrade` is `true`.

Config (`[plugins.NAME.config]`):

| key               | default | meaning                                         |
|-------------------|---------|-------------------------------------------------|
| `deny`            | empty   | comma-separated versions never to install       |
| `allow_downgrade` | `false` | `true` lets an older version through            |

It needs no probe and no directory: it decides from the update's context alone.
"""

import wit_world
from wit_world.imports import config, log, types


def parse(version: str) -> tuple[tuple[int, ...], tuple[str, ...] | None]:
    """A semver version as (major, minor, patch) and its pre-release, if any. Build metadata
    (`+…`) does not order versions."""
    core, _, pre = version.split("+", 1)[0].partition("-")
    numbers = tuple(int(part) for part in core.split("."))
    return numbers, tuple(pre.split(".")) if pre else None


def older(a: str, b: str) -> bool:
    """Is version `a` older than `b`? A pre-release is older than its release."""
    (core_a, pre_a), (core_b, pre_b) = parse(a), parse(b)
    if core_a != core_b:
        return core_a < core_b
    if pre_a is None or pre_b is None:
        return pre_a is not None and pre_b is None

    def key(ids: tuple[str, ...]) -> list[tuple[int, int, str]]:
        return [(0, int(i), "") if i.isdigit() else (1, 0, i) for i in ids]

    return key(pre_a) < key(pre_b)


def decide(ctx: types.Context) -> str | None:
    """None to proceed, otherwise why not."""
    version = ctx.bundle.version
    denied = [v.strip() for v in (config.get("deny") or "").split(",") if v.strip()]
    if version in denied:
        return f"version {version} is denied by the operator (deny = {', '.join(denied)})"
    allow_downgrade = (config.get("allow_downgrade") or "false").strip().lower()
    if allow_downgrade not in ("true", "false"):
        return f"config: allow_downgrade must be true or false, not {allow_downgrade!r}"
    if ctx.current is not None and allow_downgrade == "false":
        try:
            if older(version, ctx.current.version):
                return (
                    f"{version} is older than the running {ctx.current.version}; "
                    "set allow_downgrade = \"true\" to allow it"
                )
        except ValueError:
            return f"cannot compare versions {version!r} and {ctx.current.version!r}"
    return None


class WitWorld(wit_world.WitWorld):
    def run(self, ctx: types.Context) -> types.HookResult:
        if ctx.stage != types.Stage.DOWNLOAD_ENTER:
            return types.HookResult_Proceed()
        reason = decide(ctx)
        if reason is None:
            log.log(log.Level.INFO, f"{ctx.bundle.version} is allowed")
            return types.HookResult_Proceed()
        log.log(log.Level.WARN, reason)
        return types.HookResult_Abort(reason)
