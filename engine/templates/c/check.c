// {{name}}: a check that GETs the URL in its config (`url`) on the trial boot of a new
// release, and passes when it answers 200. The operator must also allow the URL (`http`).
//
// build/check.h holds the bindings of wit/plugin.wit: the host's functions (airlock_plugin_*)
// and the one this file exports (exports_check_check). Strings are (pointer, length) pairs,
// not NUL-terminated; what the host hands over is ours to free.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void fail(check_check_result_t *ret, const char *reason) {
  check_string_t message;
  check_string_set(&message, reason);
  airlock_plugin_log_log(AIRLOCK_PLUGIN_LOG_LEVEL_WARN, &message);
  ret->tag = AIRLOCK_PLUGIN_TYPES_CHECK_RESULT_FAIL;
  check_string_dup(&ret->val.fail, reason);
}

void exports_check_check(check_context_t *ctx, check_check_result_t *ret) {
  (void)ctx;
  char reason[1024];
  check_string_t key, url, err;
  check_string_set(&key, "url");
  if (!airlock_plugin_config_get(&key, &url)) {
    fail(ret, "config: set url (the URL to GET)");
    return;
  }
  airlock_plugin_probes_http_response_t response;
  if (!airlock_plugin_probes_http_get(&url, 2000, &response, &err)) {
    snprintf(reason, sizeof reason, "GET %.*s: %.*s", (int)url.len, (char *)url.ptr,
             (int)err.len, (char *)err.ptr);
    fail(ret, reason);
    check_string_free(&err);
  } else {
    if (response.status != 200) {
      snprintf(reason, sizeof reason, "GET %.*s answered status %u, expected 200",
               (int)url.len, (char *)url.ptr, response.status);
      fail(ret, reason);
    } else {
      ret->tag = AIRLOCK_PLUGIN_TYPES_CHECK_RESULT_PASS;
    }
    airlock_plugin_probes_http_response_free(&response);
  }
  check_string_free(&url);
}
