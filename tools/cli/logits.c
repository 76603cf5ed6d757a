/* saker logits: one forward pass over exactly the given token ids (no BOS added); writes the
 * [n_tokens x vocab] float32 little-endian logits to a file. How backends are compared with
 * other implementations. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char k_help[] =
    "usage: saker logits -m MODEL --tokens ID,ID,... -o FILE [options]\n"
    "\n"
    "Writes [n_tokens x vocab] float32 little-endian logits of one forward pass to FILE.\n"
    "\n" SK_CLI_COMMON_HELP
    "      --tokens LIST      comma-separated token ids (no BOS is added)\n"
    "  -o, --output FILE      where to write the logits\n";

/* Parses "1,2,3" into a malloc'd array; returns the count or -1 (usage error printed). */
static int parse_ids(const char *s, int32_t **out) {
    int cap = 16, n = 0;
    int32_t *v = malloc(sizeof(int32_t) * (size_t)cap);
    if (!v) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > 0x7fffffff || (*end && *end != ',')) {
            fprintf(stderr, "saker logits: --tokens: '%s' is not a comma-separated list of ids\n", s);
            free(v);
            return -1;
        }
        if (n == cap) {
            int32_t *nv = realloc(v, sizeof(int32_t) * (size_t)(cap *= 2));
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[n++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    *out = v;
    return n;
}

int sk_cmd_logits(int argc, char **argv) {
    sk_cli_common c = {0};
    const char *tokens = NULL, *outpath = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = sk_cli_common_opt(&c, argc, argv, &i);
        if (r < 0) return SK_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(k_help, stdout);
            return SK_EXIT_OK;
        } else if (!strcmp(a, "--tokens")) {
            if (!(tokens = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(outpath = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else {
            return sk_cli_usage_error("logits", "unknown option '%s'", a);
        }
    }
    if (!c.model && !c.shape) return sk_cli_usage_error("logits", "-m MODEL (or --shape NAME) is required");
    if (!tokens) return sk_cli_usage_error("logits", "--tokens ID,ID,... is required");
    if (!outpath) return sk_cli_usage_error("logits", "-o FILE is required");
    int32_t *ids = NULL;
    int n = parse_ids(tokens, &ids);
    if (n < 0) return SK_EXIT_USAGE;
    if (n == 0) {
        free(ids);
        return sk_cli_usage_error("logits", "--tokens is empty");
    }

    int rc = SK_EXIT_RUNTIME;
    float *logits = NULL;
    sk_session *sess = NULL;
    FILE *f = NULL;
    sk_model *m = sk_cli_open_model(&c);
    if (!m) goto done;
    int V = sk_model_n_vocab(m);
    logits = malloc(sizeof(float) * (size_t)V * (size_t)n);
    if (!logits) {
        sk_cli_runtime_error("out of memory for %d x %d logits", n, V);
        goto done;
    }
    if (sk_session_new(m, n, &sess) != SK_OK ||
        sk_session_eval(sess, ids, n, logits, true) != SK_OK) {
        sk_cli_runtime_error("%s", sk_last_error());
        goto done;
    }
    f = fopen(outpath, "wb");
    if (!f) {
        sk_cli_runtime_error("%s: cannot open for writing: %s", outpath, strerror(errno));
        goto done;
    }
    /* x86-64 and the GPU hosts are little-endian: the floats are written as they are. */
    if (fwrite(logits, sizeof(float), (size_t)V * (size_t)n, f) != (size_t)V * (size_t)n || fclose(f) != 0) {
        f = NULL;
        sk_cli_runtime_error("%s: write failed", outpath);
        goto done;
    }
    f = NULL;
    fprintf(stderr, "saker: wrote %d x %d logits to %s\n", n, V, outpath);
    rc = SK_EXIT_OK;
done:
    if (f) fclose(f);
    sk_session_free(sess);
    sk_model_close(m);
    free(logits);
    free(ids);
    return rc;
}
