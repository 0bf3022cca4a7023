// http-status: a check that GETs a URL on the trial boot and passes when it answers the
// expected status (and, if `min_body` is set, a body at least that long).
//
// Config ([plugins.NAME.config]):
//
// | key          | default | meaning                                                  |
// |--------------|---------|----------------------------------------------------------|
// | `url`        | -       | the URL to GET; the operator must also allow it (`http`) |
// | `status`     | `200`   | the status the answer must have                          |
// | `min_body`   | `0`     | the fewest bytes the body may have                       |
// | `timeout_ms` | `2000`  | how long the GET may take                                |

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/// The config value of `key` as a NUL-terminated string (malloc'd), or NULL when unset.
static char *config_get(const char *key) {
  check_string_t k, value;
  check_string_set(&k, key);
  if (!airlock_plugin_config_get(&k, &value)) return NULL;
  char *text = strndup((const char *)value.ptr, value.len);
  check_string_free(&value);
  return text;
}

/// The config value of `key` as a number, `fallback` when unset; false when it is not one.
static bool config_number(const char *key, unsigned long fallback, unsigned long *out) {
  char *text = config_get(key);
  if (text == NULL) {
    *out = fallback;
    return true;
  }
  char *end;
  errno = 0;
  *out = strtoul(text, &end, 10);
  bool ok = errno == 0 && end != text && *end == '\0';
  free(text);
  return ok;
}

static void log_line(airlock_plugin_log_level_t level, const char *text) {
  check_string_t message;
  check_string_set(&message, text);
  airlock_plugin_log_log(level, &message);
}

/// Sets `ret` to fail with a printf-formatted reason, and logs it.
static void fail(check_check_result_t *ret, const char *format, ...) {
  char reason[1024];
  va_list args;
  va_start(args, format);
  vsnprintf(reason, sizeof reason, format, args);
  va_end(args);
  log_line(AIRLOCK_PLUGIN_LOG_LEVEL_WARN, reason);
  ret->tag = AIRLOCK_PLUGIN_TYPES_CHECK_RESULT_FAIL;
  check_string_dup(&ret->val.fail, reason);
}

void exports_check_check(check_context_t *ctx, check_check_result_t *ret) {
  (void)ctx;
  unsigned long status, min_body, timeout_ms;
  if (!config_number("status", 200, &status)) return fail(ret, "config: status must be a number");
  if (!config_number("min_body", 0, &min_body)) return fail(ret, "config: min_body must be a number");
  if (!config_number("timeout_ms", 2000, &timeout_ms) || timeout_ms > 0xffffffffUL) {
    return fail(ret, "config: timeout_ms must be a number of milliseconds");
  }
  char *url = config_get("url");
  if (url == NULL) return fail(ret, "config: set url (the URL to GET)");

  check_string_t u, err;
  airlock_plugin_probes_http_response_t response;
  check_string_set(&u, url);
  if (!airlock_plugin_probes_http_get(&u, (uint32_t)timeout_ms, &response, &err)) {
    fail(ret, "GET %s: %.*s", url, (int)err.len, (const char *)err.ptr);
    check_string_free(&err);
    free(url);
    return;
  }
  if (response.status != status) {
    fail(ret, "GET %s answered status %u, expected %lu", url, response.status, status);
  } else if (response.body.len < min_body) {
    fail(ret, "GET %s answered %zu bytes, fewer than min_body = %lu", url, response.body.len,
         min_body);
  } else {
    char line[1024];
    snprintf(line, sizeof line, "GET %s answered status %u with %zu bytes", url, response.status,
             response.body.len);
    log_line(AIRLOCK_PLUGIN_LOG_LEVEL_INFO, line);
    ret->tag = AIRLOCK_PLUGIN_TYPES_CHECK_RESULT_PASS;
  }
  airlock_plugin_probes_http_response_free(&response);
  free(url);
}
