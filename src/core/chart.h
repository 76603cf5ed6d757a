/* Line charts rendered to an RGB raster (for `saker bench --plot`): white background, axes from 0
 * with round ticks and light grid lines, one 2-pixel polyline with round markers per series, a
 * legend in the right margin, a title, axis labels. Text uses a built-in 5x7 bitmap font of digits,
 * capital letters and . / - _ : , ( ) % + = ?; lower case is drawn in capitals, anything else as ?. */
#ifndef SK_CHART_H
#define SK_CHART_H

#include "core/status.h"
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_chart_series {
    const char *label;   /* legend text */
    const double *x, *y; /* n points, any order (drawn by increasing x); non-finite ones skipped */
    int n;
} sk_chart_series;

typedef struct sk_chart {
    const char *title, *x_label, *y_label; /* each may be NULL */
    const sk_chart_series *series;
    int n_series;
    int width, height; /* pixels; 0: 900 x 600 */
} sk_chart;

/* Where the data went: the plot area in pixels (x0, y0 top left, x1, y1 bottom right, inclusive)
 * and the data ranges at its edges; x_lo maps to x0, y_lo to y1. */
typedef struct sk_chart_frame {
    int width, height;
    int x0, y0, x1, y1;
    double x_lo, x_hi, y_lo, y_hi;
} sk_chart_frame;

/* Renders c into *rgb (malloc'd, height rows of 3 * width bytes; the caller frees it) and, if
 * frame is not NULL, describes the layout. SK_ERR_ARG for a size below 240 x 160 or above
 * 8192 x 8192, SK_ERR_NOMEM. */
sk_status sk_chart_render(const sk_chart *c, uint8_t **rgb, sk_chart_frame *frame);
/* Renders c and writes it to path as a PNG (sk_png_write's errors). */
sk_status sk_chart_write_png(const sk_chart *c, const char *path);
/* Colour of series i (ten distinct colours, then repeating). */
void sk_chart_color(int i, uint8_t rgb[3]);

#ifdef __cplusplus
}
#endif

#endif
