#define _POSIX_C_SOURCE 200809L
#include "core/png.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Reflected polynomial 0xEDB88320, four bits at a time (a 16-entry table needs no set-up and no
 * lock). */
static const uint32_t k_crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t sk_png_crc32(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ k_crc_nibble[crc & 15];
        crc = (crc >> 4) ^ k_crc_nibble[crc & 15];
    }
    return ~crc;
}

uint32_t sk_png_adler32(uint32_t adler, const uint8_t *p, size_t n) {
    uint32_t a = adler & 0xffff, b = adler >> 16;
    while (n > 0) {
        size_t k = n < 5552 ? n : 5552; /* the most bytes before b can overflow 32 bits */
        n -= k;
        while (k--) {
            a += *p++;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    return b << 16 | a;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One chunk: length, type, data, CRC over type and data. Returns 0, or -1 on a write error. */
static int write_chunk(FILE *f, const char type[4], const uint8_t *data, size_t n) {
    uint8_t hd[8], crc[4];
    put_be32(hd, (uint32_t)n);
    memcpy(hd + 4, type, 4);
    put_be32(crc, sk_png_crc32(sk_png_crc32(0, hd + 4, 4), data, n));
    if (fwrite(hd, 1, 8, f) != 8) return -1;
    if (n && fwrite(data, 1, n, f) != n) return -1;
    return fwrite(crc, 1, 4, f) == 4 ? 0 : -1;
}

sk_status sk_png_write(const char *path, const uint8_t *rgb, int w, int h) {
    if (w < 1 || h < 1 || w > SK_PNG_MAX_DIM || h > SK_PNG_MAX_DIM)
        return sk_fail(SK_ERR_ARG, "%s: PNG size %d x %d outside 1..%d", path, w, h, SK_PNG_MAX_DIM);

    /* Scanlines (a filter byte 0, then the row) in a zlib stream of stored deflate blocks:
     * 2-byte header, per block 1 byte BFINAL/BTYPE=00 + LEN + NLEN (LEN <= 65535), Adler-32. */
    const size_t row = 3 * (size_t)w, raw = (size_t)h * (row + 1);
    const size_t n_blocks = (raw + 65534) / 65535;
    const size_t idat_n = 2 + 5 * n_blocks + raw + 4;
    uint8_t *scan = malloc(raw), *idat = malloc(idat_n);
    if (!scan || !idat) {
        free(scan);
        free(idat);
        return sk_fail(SK_ERR_NOMEM, "%s: no memory for a %d x %d PNG", path, w, h);
    }
    for (int y = 0; y < h; y++) {
        scan[(size_t)y * (row + 1)] = 0;
        memcpy(scan + (size_t)y * (row + 1) + 1, rgb + (size_t)y * row, row);
    }
    for (size_t b = 0; b < n_blocks; b++) {
        const size_t off = b * 65535, len = raw - off < 65535 ? raw - off : 65535;
        uint8_t *dst = idat + 2 + 5 * b + off;
        dst[0] = b + 1 == n_blocks ? 1 : 0;
        dst[1] = (uint8_t)len;
        dst[2] = (uint8_t)(len >> 8);
        dst[3] = (uint8_t)~len;
        dst[4] = (uint8_t)(~len >> 8);
        memcpy(dst + 5, scan + off, len);
    }
    put_be32(idat + idat_n - 4, sk_png_adler32(1, scan, raw));
    free(scan);
    idat[0] = 0x78; /* deflate, 32K window */
    idat[1] = 0x01; /* no preset dictionary, fastest; (0x78 << 8 | 0x01) % 31 == 0 */

    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bits per sample */
    ihdr[9] = 2;  /* colour type: RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering (every row uses filter 0) */
    ihdr[12] = 0; /* no interlace */

    FILE *f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        free(idat);
        return sk_fail(SK_ERR_IO, "%s: cannot open for writing: %s", path, strerror(e));
    }
    int bad = fwrite(sig, 1, 8, f) != 8 || write_chunk(f, "IHDR", ihdr, sizeof ihdr) ||
              write_chunk(f, "IDAT", idat, idat_n) || write_chunk(f, "IEND", NULL, 0);
    int e = errno;
    free(idat);
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(path);
        return sk_fail(SK_ERR_IO, "%s: cannot write PNG: %s", path, strerror(e));
    }
    return SK_OK;
}
