#define _POSIX_C_SOURCE 200809L
/* sk_png_write and sk_chart_render, checked by an independent decoder: tests/png_check.py parses
 * the chunks, checks the CRCs, inflates IDAT with Python's zlib and compares pixels. */
#include "core/chart.h"
#include "core/png.h"
#include "testlib.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[] = "/tmp/sk_test_png_XXXXXX";

static const char *tmp(const char *name) {
    static char b[4][512];
    static int i = 0;
    char *p = b[i++ & 3];
    snprintf(p, sizeof b[0], "%s/%s", g_dir, name);
    return p;
}

/* Runs png_check.py on path with the given arguments; returns its exit status (0: all passed). */
static int png_check(const char *path, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' %s", sk_test_path("SK_FIXTURES", "../png_check.py"),
             path, args);
    fflush(stdout);
    int r = system(cmd);
    return r != -1 && WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static void check_checksums(void) {
    const uint8_t *s = (const uint8_t *)"123456789";
    CHECK(sk_png_crc32(0, s, 9) == 0xCBF43926u); /* the CRC-32 check value */
    CHECK(sk_png_crc32(sk_png_crc32(0, s, 4), s + 4, 5) == 0xCBF43926u);
    CHECK(sk_png_crc32(0, s, 0) == 0);
    CHECK(sk_png_adler32(1, (const uint8_t *)"Wikipedia", 9) == 0x11E60398u);
    /* Adler-32 past the 5552-byte reduction interval: all 0xff bytes, against a direct sum. */
    static uint8_t ff[20000];
    memset(ff, 0xff, sizeof ff);
    uint64_t a = 1, b = 0;
    for (size_t i = 0; i < sizeof ff; i++) {
        a = (a + 0xff) % 65521;
        b = (b + a) % 65521;
    }
    CHECK(sk_png_adler32(1, ff, sizeof ff) == (uint32_t)(b << 16 | a));
}

/* w x h image with a pattern that differs in every channel, written and compared pixel for pixel. */
static void check_image(int w, int h) {
    uint8_t *rgb = malloc((size_t)w * (size_t)h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + 3 * ((size_t)y * (size_t)w + (size_t)x);
            p[0] = (uint8_t)(x * 7 + y);
            p[1] = (uint8_t)(y * 3 + 11);
            p[2] = (uint8_t)(x ^ (y * 5));
        }
    char name[64], raw[64], args[1200];
    snprintf(name, sizeof name, "img_%dx%d.png", w, h);
    snprintf(raw, sizeof raw, "img_%dx%d.rgb", w, h);
    FILE *f = fopen(tmp(raw), "wb");
    CHECK(f && fwrite(rgb, 1, (size_t)w * (size_t)h * 3, f) == (size_t)w * (size_t)h * 3);
    if (f) fclose(f);
    sk_status st = sk_png_write(tmp(name), rgb, w, h);
    CHECKF(st == SK_OK, "%dx%d: %s", w, h, sk_last_error());
    snprintf(args, sizeof args, "--size %dx%d --pixels '%s'", w, h, tmp(raw));
    CHECKF(png_check(tmp(name), args) == 0, "%dx%d", w, h);
    free(rgb);
}

static void check_errors(void) {
    uint8_t px[3] = {1, 2, 3};
    CHECK(sk_png_write(tmp("zero.png"), px, 0, 1) == SK_ERR_ARG);
    CHECK(sk_png_write(tmp("big.png"), px, 1, SK_PNG_MAX_DIM + 1) == SK_ERR_ARG);
    const char *bad = "/nonexistent-dir-sk/x.png";
    CHECK(sk_png_write(bad, px, 1, 1) == SK_ERR_IO);
    CHECKF(strstr(sk_last_error(), bad) != NULL, "message '%s' does not name the path", sk_last_error());
    CHECK(sk_png_write(g_dir, px, 1, 1) == SK_ERR_IO); /* a directory */
    sk_chart c = {"t", NULL, NULL, NULL, 0, 100, 100};
    uint8_t *rgb = (uint8_t *)px;
    CHECK(sk_chart_render(&c, &rgb, NULL) == SK_ERR_ARG && rgb == NULL);
}

static void hex(char *b, int s) {
    uint8_t c[3];
    sk_chart_color(s, c);
    sprintf(b, "%02x%02x%02x", c[0], c[1], c[2]);
}

/* A chart of fixed data: three series that never cross (so every marker stays visible), one with a
 * single point (a bench with one output length), plus a non-finite point that must be skipped. */
static void check_chart(void) {
    static const double x[4] = {512, 128, 1024, 256}; /* out of order on purpose */
    static const double y0[4] = {9000, 3000, 12000, 5500}, y1[4] = {4500, 1500, 6000, NAN};
    static const double x2[1] = {768}, y2[1] = {800};
    const sk_chart_series s[3] = {{"isl 128", x, y0, 4}, {"isl 2048", x, y1, 4}, {"isl 8192", x2, y2, 1}};
    const sk_chart c = {"llama2-7b on NVIDIA H200", "output length (tokens)", "output tok/s", s, 3, 0, 0};
    uint8_t *rgb = NULL;
    sk_chart_frame fr;
    CHECKF(sk_chart_render(&c, &rgb, &fr) == SK_OK, "%s", sk_last_error());
    if (!rgb) return;
    CHECK(fr.width == 900 && fr.height == 600);
    CHECK(fr.x0 > 60 && fr.x1 < fr.width - 100 && fr.y0 > 20 && fr.y1 < fr.height - 40);
    CHECK(fr.x_lo == 0 && fr.x_hi >= 1024 && fr.x_hi < 1024 * 1.5);
    CHECK(fr.y_lo == 0 && fr.y_hi >= 12000 && fr.y_hi < 12000 * 1.5);
    /* Each finite point's marker sits where the frame maps it, in its series' colour. */
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            const int px = fr.x0 + (int)lround(s[k].x[i] / fr.x_hi * (fr.x1 - fr.x0));
            const int py = fr.y1 - (int)lround(s[k].y[i] / fr.y_hi * (fr.y1 - fr.y0));
            uint8_t want[3];
            sk_chart_color(k, want);
            CHECKF(!memcmp(rgb + 3 * ((size_t)py * 900 + (size_t)px), want, 3),
                   "series %d point %d at (%d, %d)", k, i, px, py);
        }
    free(rgb);

    const char *path = tmp("chart.png");
    CHECKF(sk_chart_write_png(&c, path) == SK_OK, "%s", sk_last_error());
    char a[1024], c0[8], c1[8], c2[8];
    hex(c0, 0);
    hex(c1, 1);
    hex(c2, 2);
    CHECK(strcmp(c0, c1) && strcmp(c1, c2) && strcmp(c0, c2));
    /* Inside the plot area: lines and markers (>= 30 px of each colour; the one-point series is a
     * disc of radius 4, about 50 px). Above it: the title. Left of it: tick labels. */
    snprintf(a, sizeof a,
             "--size 900x600 --corners-white --nonwhite %d,%d,%d,%d,2000 --colors %d,%d,%d,%d,30,%s,%s,%s "
             "--nonwhite 0,0,899,%d,200 --nonwhite 0,%d,%d,%d,100",
             fr.x0 + 1, fr.y0, fr.x1, fr.y1 - 1, fr.x0 + 1, fr.y0, fr.x1, fr.y1 - 1, c0, c1, c2,
             fr.y0 - 1, fr.y0, fr.x0 - 8, fr.y1);
    CHECK(png_check(path, a) == 0);
    /* The legend (right of the plot area) carries every colour too. */
    snprintf(a, sizeof a, "--colors %d,%d,899,%d,20,%s,%s,%s", fr.x1 + 1, fr.y0, fr.y1, c0, c1, c2);
    CHECK(png_check(path, a) == 0);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    check_checksums();
    check_image(1, 1);
    check_image(1456, 15);  /* 65535 bytes of scanlines: exactly one full stored block */
    check_image(150, 160);  /* 72160 bytes: two blocks */
    check_image(7, 3);
    check_errors();
    check_chart();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_dir);
    return sk_test_done("test_png");
}
