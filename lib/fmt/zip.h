/*
 * lx_zip.h - a minimal reader of zip archives held in memory, for PyTorch checkpoints (internal to liblx).
 *
 * Reads the central directory and each entry's local header; every offset and length is checked against
 * the size of the buffer. Entries are not decompressed: PyTorch stores every entry (method 0, STORED), and
 * lx_zip_data refuses any other method. Zip64 archives (over 4 GB) are refused.
 * Ownership follows lx_core.h: lx_zip_init/lx_zip_destroy; entries point into the caller's buffer, which must
 * outlive the lx_zip.
 */
#ifndef LX_ZIP_H
#define LX_ZIP_H

#include "lx_core.h"

typedef struct {
	char *name;                  /* NUL-terminated copy */
	const unsigned char *data;   /* inside the buffer */
	uint64_t size;               /* compressed size = stored size for method 0 */
	uint32_t crc;
	int method;
} lx_zip_entry;

typedef struct {
	lx_zip_entry *ents;          /* sorted by name */
	size_t n;
	const char *path;            /* for messages, not owned */
} lx_zip;

/* Parses the archive in buf[0..len). path names the file in messages. LX_EMODEL on a malformed archive. */
lx_status lx_zip_init(lx_zip *z, const unsigned char *buf, size_t len, const char *path, lx_err *e);
void lx_zip_destroy(lx_zip *z);
/* The entry called name, or NULL. */
const lx_zip_entry *lx_zip_find(const lx_zip *z, const char *name);
/* Checks that ent is STORED and that its CRC-32 matches; *data and *size then give its bytes. */
lx_status lx_zip_data(const lx_zip *z, const lx_zip_entry *ent, const unsigned char **data, size_t *size,
                      lx_err *e);
uint32_t lx_crc32(const unsigned char *p, size_t n);

#endif
