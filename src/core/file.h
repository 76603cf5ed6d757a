/* Read-only memory-mapped files. */
#ifndef SK_FILE_H
#define SK_FILE_H

#include "core/status.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_file {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
} sk_file;

/* Maps path read-only. On failure returns SK_ERR_IO naming the path and the reason. */
sk_status sk_file_map(const char *path, sk_file *f);
void sk_file_unmap(sk_file *f);
/* Reads a whole (small) file into a malloc'd NUL-terminated buffer. */
sk_status sk_file_read_all(const char *path, char **out, size_t *len);
/* 1 if path is a directory, 0 if not, -1 if it does not exist. */
int sk_path_is_dir(const char *path);

#ifdef __cplusplus
}
#endif

#endif
