/* saker tokenize: prints the ids of a text, space-separated on one line. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char k_help[] =
    "usage: saker tokenize -m MODEL -p TEXT [options]\n"
    "\n" SK_CLI_COMMON_HELP
    "  -p, --prompt TEXT      text to tokenize\n"
    "      --no-bos           do not add BOS even if the model wants it\n"
    "      --special          parse special-token text such as <|im_start|>\n"
    "      --pieces           print one 'id<TAB>piece' per line instead\n";

int sk_cmd_tokenize(int argc, char **argv) {
    sk_cli_common c = {0};
    const char *text = NULL;
    bool bos = true, special = false, pieces = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = sk_cli_common_opt(&c, argc, argv, &i);
        if (r < 0) return SK_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(k_help, stdout);
            return SK_EXIT_OK;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(text = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--no-bos")) {
            bos = false;
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else if (!strcmp(a, "--pieces")) {
            pieces = true;
        } else {
            return sk_cli_usage_error("tokenize", "unknown option '%s'", a);
        }
    }
    if (!c.model && !c.shape) return sk_cli_usage_error("tokenize", "-m MODEL (or --shape NAME) is required");
    if (!text) return sk_cli_usage_error("tokenize", "-p TEXT is required");
    sk_model *m = sk_cli_open_model(&c);
    if (!m) return SK_EXIT_RUNTIME;
    int rc = SK_EXIT_RUNTIME;
    size_t len = strlen(text);
    int cap = (int)len + 16;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    int n = ids ? sk_tokenize(m, text, len, bos, special, ids, cap) : -1;
    if (n < 0 || n > cap) {
        sk_cli_runtime_error("tokenizing: %s", sk_last_error());
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (pieces) {
            char buf[256];
            int nb = sk_token_to_bytes(m, ids[i], buf, (int)sizeof buf);
            printf("%d\t%.*s\n", ids[i], nb < (int)sizeof buf ? nb : (int)sizeof buf, buf);
        } else {
            printf(i ? " %d" : "%d", ids[i]);
        }
    }
    if (!pieces) printf("\n");
    fprintf(stderr, "saker: %d tokens\n", n);
    rc = SK_EXIT_OK;
done:
    free(ids);
    sk_model_close(m);
    return rc;
}
