/*
 * fmt/zip.h - a reader of zip archives held in memory (internal to liblx): PyTorch checkpoints, NumPy's .npz.
 *
 * Reads the central directory (with zip64 sizes and offsets in an entry's extra field) and each entry's
 * local header; every offset and length is checked against the size of the buffer before it is used.
 * Entries are stored (method 0) or deflated (method 8, zlib); CRC-32 is zlib's. Multi-volume archives and
 * zip64 end records (over 65535 entries) are refused, and so is a name that appears twice.
 * Ownership follows lx_core.h: lx_zip_init/lx_zip_destroy; entries point into the caller's buffer, which must
 * outlive the lx_zip.
 */
#ifndef LX_FMT_ZIP_H
#define LX_FMT_ZIP_H

#include "lx_core.h"

typedef struct {
	char *name;                  /* NUL-terminated copy */
	const unsigned char *data;   /* its csize bytes, inside the buffer */
	uint64_t csize, usize;       /* compressed and uncompressed sizes (equal when stored) */
	uint32_t crc;
	int method;                  /* 0 stored, 8 deflated; others are refused when read */
} lx_zip_entry;

typedef struct {
	lx_zip_entry *ents;          /* sorted by name */
	size_t n;
	const char *path;            /* for messages, not owned */
	const char *noun;            /* what messages call an entry */
	lx_status bad;               /* the status of a malformed archive */
} lx_zip;

/* Parses the archive in buf[0..len). Messages name the file path and an entry "<noun> <name>" ("zip entry",
 * "member"); bad is the status of a malformed archive (LX_EMODEL for a model file, LX_EINPUT for data). */
lx_status lx_zip_init(lx_zip *z, const unsigned char *buf, size_t len, const char *path, const char *noun,
                      lx_status bad, lx_err *e);
void lx_zip_destroy(lx_zip *z);
/* The entry called name, or NULL. */
const lx_zip_entry *lx_zip_find(const lx_zip *z, const char *name);
/* A stored entry's bytes in the buffer, its CRC-32 checked; a deflated one is refused. */
lx_status lx_zip_data(const lx_zip *z, const lx_zip_entry *ent, const unsigned char **data, size_t *size,
                      lx_err *e);
/* Copies or inflates ent into out[0..ent->usize), its CRC-32 checked. */
lx_status lx_zip_extract(const lx_zip *z, const lx_zip_entry *ent, unsigned char *out, lx_err *e);

#endif
