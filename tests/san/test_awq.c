/* AutoAWQ checkpoints that are malformed (src/io/hf.c's AWQ path) under ASan + UBSan: a good
 * directory is written from a tiny fixture (RTN), then copies with one thing wrong each must
 * fail to load with SK_ERR_FORMAT / SK_ERR_UNSUPPORTED and a message naming what is wrong,
 * without a crash or a leak; the good one must load. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp */
#endif
#include "io/safetensors.h"
#include "quant/quant.h"
#include "testlib.h"

#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[64];
static char g_good[4200];

static void sh(const char *fmt, const char *a, const char *b, const char *c) {
    char cmd[13000];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    if (system(cmd) != 0) {
        fprintf(stderr, "FAIL: %s\n", cmd);
        exit(1);
    }
}

/* A copy of the good directory named name; returns its path (static buffer). */
static const char *copy_good(const char *name) {
    static char d[4200];
    snprintf(d, sizeof d, "%s/%s", g_tmp, name);
    sh("rm -rf '%s' && cp -r '%s' '%s'", d, g_good, d);
    return d;
}

/* Sets quantization_config[key] = v (stolen; NULL deletes) in dir/config.json. */
static void set_qc(const char *dir, const char *key, json_t *v) {
    char p[4300];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *c = json_load_file(p, 0, NULL);
    if (!c) exit(1);
    json_t *qc = json_object_get(c, "quantization_config");
    if (v) json_object_set_new(qc, key, v);
    else json_object_del(qc, key);
    json_dump_file(c, p, JSON_INDENT(2));
    json_decref(c);
}

enum { KEEP = 0, DROP, BAD_SHAPE, AS_F32, HALF_ROWS };

/* Rewrites dir/model.safetensors with the tensor `victim` changed as `how`. */
static void mutate(const char *dir, const char *victim, int how) {
    char p[4300];
    snprintf(p, sizeof p, "%s/model.safetensors", g_good);
    sk_st_file f;
    if (sk_st_open(p, &f) != SK_OK) {
        fprintf(stderr, "FAIL: %s\n", sk_last_error());
        exit(1);
    }
    sk_st_out *o = calloc((size_t)f.n_tensors, sizeof *o);
    int n = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const sk_st_tensor *t = &f.tensors[i];
        sk_st_out x = {t->name, t->dtype_name, t->n_dims, {0}, t->data, t->nbytes};
        memcpy(x.shape, t->shape, sizeof x.shape);
        if (!strcmp(t->name, victim)) {
            if (how == DROP) continue;
            if (how == BAD_SHAPE) { /* same bytes, transposed-looking shape */
                x.shape[0] = t->shape[1];
                x.shape[1] = t->shape[0];
            }
            if (how == AS_F32) x.dtype = "F32";
            if (how == HALF_ROWS) {
                x.shape[0] = t->shape[0] / 2;
                x.nbytes = t->nbytes / 2;
            }
        }
        o[n++] = x;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(sk_st_write(p, o, n) == SK_OK);
    free(o);
    sk_st_close(&f);
}

static void expect_fail(const char *dir, const char *what, const char *needle) {
    sk_model_file mf;
    sk_status s = sk_hf_load(dir, &mf);
    CHECKF(s == SK_ERR_FORMAT || s == SK_ERR_UNSUPPORTED, "%s: status %d (loaded?)", what, (int)s);
    if (s == SK_OK) {
        sk_mf_free(&mf);
        return;
    }
    CHECKF(strstr(sk_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what,
           sk_last_error(), needle);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/sk_awq_san_XXXXXX");
    CHECK(mkdtemp(g_tmp) != NULL);
    snprintf(g_good, sizeof g_good, "%s/good", g_tmp);
    const char *src = sk_test_path("SK_FIXTURES", "hf-llama-gqa-tied");
    sk_model_file mf, q;
    CHECK(sk_model_file_load(src, NULL, &mf) == SK_OK);
    sk_quant_params p;
    sk_quant_params_default(&p);
    p.method = SK_QUANT_RTN;
    p.group = 32;
    int g = 0;
    CHECK(sk_quantize_model(&mf, &p, NULL, 0, 0, &q, &g) == SK_OK && g == 32);
    CHECK(sk_awq_write_hf(&q, g, src, g_good) == SK_OK);
    q.vocab = (sk_vocab_data){0};
    sk_mf_free(&q);
    sk_mf_free(&mf);

    sk_model_file ok;
    sk_status s = sk_hf_load(g_good, &ok);
    CHECKF(s == SK_OK, "good: %s", sk_last_error());
    if (s == SK_OK) {
        const sk_tensor *t = sk_mf_find(&ok, "blk.0.attn_q.weight");
        CHECK(t && t->type == SK_Q4G32 && t->shape[0] == 64 && t->shape[1] == 64);
        sk_mf_free(&ok);
    }

    /* older AutoAWQ: no quantization_config, quant_config.json with w_bit / q_group_size */
    const char *d = copy_good("oldcfg");
    {
        char p1[4300];
        snprintf(p1, sizeof p1, "%s/config.json", d);
        json_t *c = json_load_file(p1, 0, NULL);
        json_object_del(c, "quantization_config");
        json_dump_file(c, p1, JSON_INDENT(2));
        json_decref(c);
        snprintf(p1, sizeof p1, "%s/quant_config.json", d);
        FILE *f = fopen(p1, "w");
        fputs("{\"zero_point\": true, \"q_group_size\": 32, \"w_bit\": 4, \"version\": \"GEMM\"}", f);
        fclose(f);
        sk_model_file m2;
        s = sk_hf_load(d, &m2);
        CHECKF(s == SK_OK, "quant_config.json: %s", sk_last_error());
        if (s == SK_OK) {
            const sk_tensor *t = sk_mf_find(&m2, "blk.1.ffn_down.weight");
            CHECK(t && t->type == SK_Q4G32);
            sk_mf_free(&m2);
        }
    }
    d = copy_good("group48");
    set_qc(d, "group_size", json_integer(48));
    expect_fail(d, "group 48", "group_size 48");
    d = copy_good("group64");
    set_qc(d, "group_size", json_integer(64));
    expect_fail(d, "group 64 on group-32 tensors", "do not fit");
    d = copy_good("gemv");
    set_qc(d, "version", json_string("gemv"));
    expect_fail(d, "version gemv", "'gemv'");
    d = copy_good("gptq");
    set_qc(d, "quant_method", json_string("gptq"));
    expect_fail(d, "gptq", "'gptq'");
    d = copy_good("bits8");
    set_qc(d, "bits", json_integer(8));
    expect_fail(d, "8 bits", "8 bits");
    d = copy_good("nozp");
    set_qc(d, "zero_point", json_false());
    expect_fail(d, "no zero point", "zero points");
    d = copy_good("groupstr");
    set_qc(d, "group_size", json_string("128"));
    expect_fail(d, "group as a string", "group_size");

    d = copy_good("noscales");
    mutate(d, "model.layers.1.mlp.up_proj.scales", DROP);
    expect_fail(d, "missing scales", "model.layers.1.mlp.up_proj.scales' is missing");
    d = copy_good("noqweight");
    mutate(d, "model.layers.0.self_attn.k_proj.qweight", DROP);
    expect_fail(d, "missing qweight", "k_proj.qweight' is missing");
    d = copy_good("shape");
    mutate(d, "model.layers.0.self_attn.q_proj.qweight", BAD_SHAPE);
    expect_fail(d, "transposed qweight", "in_features 8 must be");
    d = copy_good("zshape");
    mutate(d, "model.layers.0.mlp.up_proj.qzeros", HALF_ROWS);
    expect_fail(d, "short qzeros", "do not fit");
    d = copy_good("f32qw");
    mutate(d, "model.layers.0.self_attn.v_proj.qweight", AS_F32);
    expect_fail(d, "F32 qweight", "expected I32");
    d = copy_good("f32sc");
    mutate(d, "model.layers.0.self_attn.v_proj.scales", HALF_ROWS);
    expect_fail(d, "short scales", "do not fit");

    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    CHECK(system(cmd) == 0);
    return sk_test_done("san_test_awq");
}
