// {{name}}: a hook that vetoes an update, before anything is downloaded, when the bundle's
// version is one of those in its config (`block`, comma-separated).
//
// build/hook.h holds the bindings of wit/plugin.wit: the host's functions (airlock_plugin_*)
// and the one this file exports (exports_hook_run). Strings are (pointer, length) pairs, not
// NUL-terminated; what the host hands over is ours to free.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hook.h"

/// Is `version` one of the comma-separated entries of `list` (spaces around them ignored)?
static bool is_blocked(const hook_string_t *version, const hook_string_t *list) {
  const char *p = (const char *)list->ptr, *end = p + list->len;
  while (p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    while (p < stop && *p == ' ') p++;
    const char *last = stop;
    while (last > p && last[-1] == ' ') last--;
    if ((size_t)(last - p) == version->len && memcmp(p, version->ptr, version->len) == 0) {
      return true;
    }
    p = stop + 1;
  }
  return false;
}

void exports_hook_run(hook_context_t *ctx, hook_hook_result_t *ret) {
  ret->tag = AIRLOCK_PLUGIN_TYPES_HOOK_RESULT_PROCEED;
  if (ctx->stage != AIRLOCK_PLUGIN_TYPES_STAGE_DOWNLOAD_ENTER) return;
  hook_string_t key, block;
  hook_string_set(&key, "block");
  if (!airlock_plugin_config_get(&key, &block)) return;
  if (is_blocked(&ctx->bundle.version, &block)) {
    char reason[1024];
    snprintf(reason, sizeof reason, "version %.*s is blocked (block = %.*s)",
             (int)ctx->bundle.version.len, (char *)ctx->bundle.version.ptr, (int)block.len,
             (char *)block.ptr);
    hook_string_t message;
    hook_string_set(&message, reason);
    airlock_plugin_log_log(AIRLOCK_PLUGIN_LOG_LEVEL_WARN, &message);
    ret->tag = AIRLOCK_PLUGIN_TYPES_HOOK_RESULT_ABORT;
    hook_string_dup(&ret->val.abort, reason);
  }
  hook_string_free(&block);
}
