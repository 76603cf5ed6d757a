#include "core/chart.h"
#include "core/png.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 5x7 glyphs, one byte per row from the top, bit 4 the leftmost column. */
typedef struct glyph {
    char c;
    uint8_t rows[7];
} glyph;

static const glyph k_font[] = {
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
};

static const uint8_t *glyph_rows(char c) {
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    const int n = (int)(sizeof k_font / sizeof k_font[0]);
    for (int i = 0; i < n; i++)
        if (k_font[i].c == c) return k_font[i].rows;
    return k_font[n - 1].rows; /* '?' */
}

/* matplotlib's tab10 */
static const uint8_t k_palette[10][3] = {
    {0x1f, 0x77, 0xb4}, {0xff, 0x7f, 0x0e}, {0x2c, 0xa0, 0x2c}, {0xd6, 0x27, 0x28}, {0x94, 0x67, 0xbd},
    {0x8c, 0x56, 0x4b}, {0xe3, 0x77, 0xc2}, {0x7f, 0x7f, 0x7f}, {0xbc, 0xbd, 0x22}, {0x17, 0xbe, 0xcf}};

void sk_chart_color(int i, uint8_t rgb[3]) {
    memcpy(rgb, k_palette[((i % 10) + 10) % 10], 3);
}

typedef struct canvas {
    uint8_t *p;
    int w, h;
} canvas;

static const uint8_t k_black[3] = {0, 0, 0}, k_grid[3] = {225, 225, 225}, k_text[3] = {40, 40, 40};

static void px(canvas *cv, int x, int y, const uint8_t c[3]) {
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h) return;
    memcpy(cv->p + 3 * ((size_t)y * (size_t)cv->w + (size_t)x), c, 3);
}

static void rect(canvas *cv, int x0, int y0, int x1, int y1, const uint8_t c[3]) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) px(cv, x, y, c);
}

/* Bresenham from (x0, y0) to (x1, y1), each step a t x t square. */
static void line(canvas *cv, int x0, int y0, int x1, int y1, int t, const uint8_t c[3]) {
    const int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        rect(cv, x0, y0, x0 + t - 1, y0 + t - 1, c);
        if (x0 == x1 && y0 == y1) break;
        const int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

static void disc(canvas *cv, int cx, int cy, int r, const uint8_t c[3]) {
    for (int y = -r; y <= r; y++)
        for (int x = -r; x <= r; x++)
            if (x * x + y * y <= r * r + r) px(cv, cx + x, cy + y, c);
}

/* Text is s glyphs of 5 x 7 cells at `scale` pixels per cell, one empty column between glyphs. */
static int text_w(const char *s, int scale) {
    const int n = (int)strlen(s);
    return n ? (6 * n - 1) * scale : 0;
}

/* Draws s with its top-left corner at (x, y); up: rotated a quarter turn anticlockwise, reading
 * upwards from (x, y) as the bottom-left corner. */
static void text(canvas *cv, int x, int y, const char *s, int scale, bool up, const uint8_t c[3]) {
    for (int i = 0; s[i]; i++) {
        const uint8_t *g = glyph_rows(s[i]);
        for (int r = 0; r < 7; r++)
            for (int k = 0; k < 5; k++) {
                if (!(g[r] >> (4 - k) & 1)) continue;
                const int u = (6 * i + k) * scale, v = r * scale; /* along, down the glyph */
                if (up) rect(cv, x + v, y - u - scale + 1, x + v + scale - 1, y - u, c);
                else rect(cv, x + u, y + v, x + u + scale - 1, y + v + scale - 1, c);
            }
    }
}

/* A round step about hi / 8 (1, 2 or 5 times a power of ten) and hi rounded up to it. */
static double nice_step(double hi) {
    const double raw = hi / 8, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* Tick label for v on an axis whose step is `step` and top `hi`: thousands as K, millions as M
 * above 1e5 / 1e8 so labels stay short; decimals only as many as the step needs. */
static void tick_label(char *buf, size_t n, double v, double step, double hi) {
    const char *suffix = "";
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    const double unit = hi >= 1e8 ? 1e6 : hi >= 1e5 ? 1e3 : 1;
    if (unit > 1) {
        v /= unit;
        step /= unit;
        suffix = unit == 1e6 ? "M" : "K";
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    snprintf(buf, n, "%.*f%s", dec, v, suffix);
}

typedef struct pt {
    double x, y;
} pt;

static int cmp_pt(const void *a, const void *b) {
    const double x = ((const pt *)a)->x, y = ((const pt *)b)->x;
    return x < y ? -1 : x > y;
}

sk_status sk_chart_render(const sk_chart *c, uint8_t **rgb, sk_chart_frame *frame) {
    *rgb = NULL;
    const int W = c->width ? c->width : 900, H = c->height ? c->height : 600;
    if (W < 240 || H < 160 || W > 8192 || H > 8192)
        return sk_fail(SK_ERR_ARG, "chart size %d x %d outside 240 x 160 .. 8192 x 8192", W, H);
    canvas cv = {malloc((size_t)W * (size_t)H * 3), W, H};
    if (!cv.p) return sk_fail(SK_ERR_NOMEM, "no memory for a %d x %d chart", W, H);
    memset(cv.p, 255, (size_t)W * (size_t)H * 3);

    /* Data ranges: both axes start at 0 (throughput against length reads best from zero). */
    double xmax = 0, ymax = 0;
    int n_pts = 0;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->series[s].n; i++) {
            const double x = c->series[s].x[i], y = c->series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            xmax = fmax(xmax, x);
            ymax = fmax(ymax, y);
            n_pts++;
        }
    if (xmax <= 0) xmax = 1;
    if (ymax <= 0) ymax = 1;
    const double xstep = nice_step(xmax), ystep = nice_step(ymax * 1.05);
    const double xhi = ceil(xmax / xstep - 1e-9) * xstep, yhi = ceil(ymax * 1.05 / ystep - 1e-9) * ystep;

    /* Layout: fonts at scale 2 (10 x 14 px glyphs) for ticks, labels and legend, 3 for the title. */
    const int ts = 2, fh = 7 * ts;
    const int x0 = 16 + fh + 10 + 6 * 6 * ts + 10, y0 = 56, x1 = W - 190, y1 = H - (16 + 2 * fh + 24);
    const sk_chart_frame fr = {W, H, x0, y0, x1, y1, 0, xhi, 0, yhi};
    if (frame) *frame = fr;
#define MAPX(v) (x0 + (int)lround(((v) / xhi) * (x1 - x0)))
#define MAPY(v) (y1 - (int)lround(((v) / yhi) * (y1 - y0)))

    char buf[64];
    for (int k = 0; k * ystep <= yhi * (1 + 1e-9); k++) { /* y grid, ticks, labels */
        const int y = MAPY(k * ystep);
        if (k) line(&cv, x0 + 1, y, x1, y, 1, k_grid);
        line(&cv, x0 - 6, y, x0 - 1, y, 1, k_black);
        tick_label(buf, sizeof buf, k * ystep, ystep, yhi);
        text(&cv, x0 - 10 - text_w(buf, ts), y - fh / 2, buf, ts, false, k_text);
    }
    for (int k = 0; k * xstep <= xhi * (1 + 1e-9); k++) { /* x grid, ticks, labels */
        const int x = MAPX(k * xstep);
        if (k) line(&cv, x, y0, x, y1 - 1, 1, k_grid);
        line(&cv, x, y1 + 1, x, y1 + 6, 1, k_black);
        tick_label(buf, sizeof buf, k * xstep, xstep, xhi);
        text(&cv, x - text_w(buf, ts) / 2, y1 + 12, buf, ts, false, k_text);
    }
    line(&cv, x0, y0, x0, y1, 1, k_black); /* axes */
    line(&cv, x0, y1, x1, y1, 1, k_black);
    if (c->x_label)
        text(&cv, (x0 + x1 - text_w(c->x_label, ts)) / 2, y1 + 12 + fh + 12, c->x_label, ts, false, k_text);
    if (c->y_label)
        text(&cv, 16, (y0 + y1 + text_w(c->y_label, ts)) / 2, c->y_label, ts, true, k_text);
    if (c->title) {
        const int sc = text_w(c->title, 3) <= W - 20 ? 3 : 2;
        const int tw = text_w(c->title, sc);
        text(&cv, tw <= W - 20 ? (W - tw) / 2 : 10, (y0 - 7 * sc) / 2, c->title, sc, false, k_black);
    }

    /* Series: lines first, then markers, then the legend entry. */
    pt *p = malloc(sizeof(pt) * (size_t)(n_pts ? n_pts : 1));
    if (!p) {
        free(cv.p);
        return sk_fail(SK_ERR_NOMEM, "no memory for a chart of %d points", n_pts);
    }
    for (int s = 0; s < c->n_series; s++) {
        const sk_chart_series *se = &c->series[s];
        uint8_t col[3];
        sk_chart_color(s, col);
        int n = 0;
        for (int i = 0; i < se->n; i++)
            if (isfinite(se->x[i]) && isfinite(se->y[i])) p[n++] = (pt){se->x[i], se->y[i]};
        qsort(p, (size_t)n, sizeof *p, cmp_pt);
        for (int i = 1; i < n; i++)
            line(&cv, MAPX(p[i - 1].x), MAPY(p[i - 1].y), MAPX(p[i].x), MAPY(p[i].y), 2, col);
        for (int i = 0; i < n; i++) disc(&cv, MAPX(p[i].x), MAPY(p[i].y), 4, col);
        const int ly = y0 + 10 + s * (fh + 10), lx = x1 + 20;
        line(&cv, lx, ly + fh / 2 - 1, lx + 27, ly + fh / 2 - 1, 2, col);
        disc(&cv, lx + 14, ly + fh / 2, 4, col);
        if (se->label) text(&cv, lx + 38, ly, se->label, ts, false, k_text);
    }
#undef MAPX
#undef MAPY
    free(p);
    *rgb = cv.p;
    return SK_OK;
}

sk_status sk_chart_write_png(const sk_chart *c, const char *path) {
    uint8_t *rgb = NULL;
    sk_chart_frame fr;
    sk_status st = sk_chart_render(c, &rgb, &fr);
    if (st != SK_OK) return st;
    st = sk_png_write(path, rgb, fr.width, fr.height);
    free(rgb);
    return st;
}
