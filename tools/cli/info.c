/* saker info: validates the whole file (every tensor's extent, type and shape, done by the
 * loader) and describes the model. */
#include "cli.h"

#include <string.h>

static const char k_help[] = "usage: saker info -m MODEL [options]\n\n" SK_CLI_COMMON_HELP;

int sk_cmd_info(int argc, char **argv) {
    sk_cli_common c = {0};
    c.device = SK_DEVICE_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = sk_cli_common_opt(&c, argc, argv, &i);
        if (r < 0) return SK_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(k_help, stdout);
            return SK_EXIT_OK;
        }
        return sk_cli_usage_error("info", "unknown option '%s'", a);
    }
    if (!c.model && !c.shape) return sk_cli_usage_error("info", "-m MODEL (or --shape NAME) is required");
    sk_model *m = sk_cli_open_model(&c);
    if (!m) return SK_EXIT_RUNTIME;
    sk_model_print_info(m, stdout);
    sk_model_close(m);
    return SK_EXIT_OK;
}
