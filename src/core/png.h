/* A minimal PNG writer: 8-bit RGB, no interlace, the image data in stored (uncompressed) deflate
 * blocks. Enough for charts written by the tools; no library dependency. */
#ifndef SK_PNG_H
#define SK_PNG_H

#include "core/status.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest width or height sk_png_write accepts. */
#define SK_PNG_MAX_DIM 16384

/* Writes the w x h image rgb (h rows of 3 * w bytes, top row first, R G B per pixel) to path.
 * Returns SK_ERR_ARG for a size outside 1..SK_PNG_MAX_DIM, SK_ERR_NOMEM, or SK_ERR_IO naming the
 * path and the reason; a partly written file is removed. The caller keeps rgb. */
sk_status sk_png_write(const char *path, const uint8_t *rgb, int w, int h);

/* CRC-32 as PNG chunks (and zlib's crc32) use it: pass crc = 0 to start, the previous result to
 * continue. Exposed for the tests. */
uint32_t sk_png_crc32(uint32_t crc, const uint8_t *p, size_t n);
/* Adler-32 as zlib streams use it: pass adler = 1 to start. */
uint32_t sk_png_adler32(uint32_t adler, const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif
