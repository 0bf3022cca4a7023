// battery: a hook that refuses to start an update on a low battery (at `download-enter`;
// every other stage proceeds), unless the device is charging. It reads the kernel's
// power-supply files through a directory the operator pre-opens for it, read-only:
//
//   [[plugins.battery.dirs]]
//   host = "/sys/class/power_supply/BAT0"
//   guest = "/battery"
//
// Below `min` percent it aborts the update, or, when `retry` is set, asks the engine to try
// again after that many seconds (a device on a charger will be ready later).
//
// Config ([plugins.NAME.config]):
//
// | key      | default             | meaning                                         |
// |----------|---------------------|-------------------------------------------------|
// | `dir`    | `/battery`          | the guest path of the pre-opened directory      |
// | `min`    | `30`                | the lowest charge, in percent, to update on     |
// | `retry`  | unset (abort)       | seconds to wait instead of aborting             |
//
// `DIR/capacity` holds the charge in percent; `DIR/status`, when present, `Charging`, `Full`,
// `Discharging`, … (the kernel's spelling). Charging or full always proceeds.

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hook.h"

static char *config_get(const char *key) {
  hook_string_t k, value;
  hook_string_set(&k, key);
  if (!airlock_plugin_config_get(&k, &value)) return NULL;
  char *text = strndup((const char *)value.ptr, value.len);
  hook_string_free(&value);
  return text;
}

/// A whole number in 0..=max, from `text`; false when it is not one.
static bool parse_number(const char *text, unsigned long max, unsigned long *out) {
  char *end;
  errno = 0;
  *out = strtoul(text, &end, 10);
  while (*end == '\n' || *end == ' ') end++;
  return errno == 0 && end != text && *end == '\0' && *out <= max;
}

/// The first line of `path`, without its newline, into `buf`; false when it cannot be read.
static bool read_line(const char *path, char *buf, size_t size) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return false;
  bool ok = fgets(buf, (int)size, f) != NULL;
  fclose(f);
  buf[strcspn(buf, "\n")] = '\0';
  return ok;
}

static void log_line(airlock_plugin_log_level_t level, const char *text) {
  hook_string_t message;
  hook_string_set(&message, text);
  airlock_plugin_log_log(level, &message);
}

static void abort_update(hook_hook_result_t *ret, const char *format, ...) {
  char reason[1024];
  va_list args;
  va_start(args, format);
  vsnprintf(reason, sizeof reason, format, args);
  va_end(args);
  log_line(AIRLOCK_PLUGIN_LOG_LEVEL_WARN, reason);
  ret->tag = AIRLOCK_PLUGIN_TYPES_HOOK_RESULT_ABORT;
  hook_string_dup(&ret->val.abort, reason);
}

static void decide(hook_hook_result_t *ret) {
  char *dir = config_get("dir");
  char *min_text = config_get("min");
  char *retry_text = config_get("retry");
  unsigned long min = 30, retry = 0;
  char path[512], line[128], msg[256];

  ret->tag = AIRLOCK_PLUGIN_TYPES_HOOK_RESULT_PROCEED;
  if (min_text != NULL && !parse_number(min_text, 100, &min)) {
    abort_update(ret, "config: min must be a percentage from 0 to 100, not \"%s\"", min_text);
  } else if (retry_text != NULL && !parse_number(retry_text, 0xffffffffUL, &retry)) {
    abort_update(ret, "config: retry must be a number of seconds, not \"%s\"", retry_text);
  } else {
    const char *base = dir != NULL ? dir : "/battery";
    snprintf(path, sizeof path, "%s/status", base);
    if (read_line(path, line, sizeof line) && (!strcmp(line, "Charging") || !strcmp(line, "Full"))) {
      snprintf(msg, sizeof msg, "battery %s: updating", line);
      log_line(AIRLOCK_PLUGIN_LOG_LEVEL_INFO, msg);
    } else {
      unsigned long charge;
      snprintf(path, sizeof path, "%s/capacity", base);
      if (!read_line(path, line, sizeof line)) {
        abort_update(ret,
                     "cannot read %s (%s); pre-open the battery's directory for this plugin "
                     "([[plugins.NAME.dirs]] host = \"/sys/class/power_supply/BAT0\", guest = \"%s\")",
                     path, strerror(errno), base);
      } else if (!parse_number(line, 100, &charge)) {
        abort_update(ret, "%s holds \"%s\", not a percentage", path, line);
      } else if (charge < min && retry_text != NULL) {
        snprintf(msg, sizeof msg, "battery at %lu%%, below %lu%%: trying again in %lu s", charge,
                 min, retry);
        log_line(AIRLOCK_PLUGIN_LOG_LEVEL_WARN, msg);
        ret->tag = AIRLOCK_PLUGIN_TYPES_HOOK_RESULT_RETRY_LATER;
        ret->val.retry_later = (uint32_t)retry;
      } else if (charge < min) {
        abort_update(ret, "battery at %lu%%, below the %lu%% needed to update (min)", charge, min);
      }
    }
  }
  free(dir);
  free(min_text);
  free(retry_text);
}

void exports_hook_run(hook_context_t *ctx, hook_hook_result_t *ret) {
  if (ctx->stage != AIRLOCK_PLUGIN_TYPES_STAGE_DOWNLOAD_ENTER) {
    ret->tag = AIRLOCK_PLUGIN_TYPES_HOOK_RESULT_PROCEED;
    return;
  }
  decide(ret);
}
