/*
 * lx_core.h - liblx's core layer: status and errors, tensors, the record stream, and a clock.
 *
 * Ownership, once for the whole library: an object made by lx_X_new() or lx_X_open() is freed by
 * lx_X_free() (lx_X_free(NULL) does nothing); a struct the caller provides is set up by lx_X_init() and
 * emptied by lx_X_destroy(). Pointers returned by a getter stay owned by the object they came from and live
 * as long as it does, unless the comment says otherwise.
 *
 * Errors: a function that can fail returns an lx_status (LX_OK is 0) and, when it fails, fills the lx_err
 * the caller passed with one line naming the file, record or field, what was found and what was expected.
 * The library never prints and never exits.
 */
#ifndef LX_CORE_H
#define LX_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#define LX_VERSION "0.1.0"

/* ---- status and errors ------------------------------------------------------------------------------ */

/* These values are the exit statuses of every tool (see lx-stream(5), EXIT STATUS). */
typedef enum {
	LX_OK = 0,
	LX_EINPUT = 1,  /* bad input: a record, a field, a line of text */
	LX_EUSAGE = 2,  /* bad command line */
	LX_EMODEL = 3,  /* a model directory or another named file cannot be used */
	LX_EIO = 4,     /* reading or writing failed (disk full, closed pipe with an error), or memory ran out
	                   (the message then says "out of memory") */
	LX_EINTR = 5    /* stopped by a signal after flushing every finished record */
} lx_status;

typedef struct {
	lx_status status;
	char msg[512];
} lx_err;

/* Fills e (if not NULL) with the formatted message and returns status. */
lx_status lx_errf(lx_err *e, lx_status status, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* ---- tensors ---------------------------------------------------------------------------------------- */

typedef enum { LX_F32, LX_F16, LX_BF16, LX_F64, LX_I32, LX_I64, LX_I16, LX_I8, LX_U8, LX_BOOL } lx_dtype;

#define LX_MAX_DIMS 8

/* A view of a tensor inside a record or a file. data may be unaligned: read it through the copy functions. */
typedef struct {
	lx_dtype dtype;
	int ndim;
	int64_t shape[LX_MAX_DIMS];
	const void *data;
	int64_t numel;
} lx_tensor;

size_t lx_dtype_size(lx_dtype t);
const char *lx_dtype_numpy(lx_dtype t);      /* "<f4", ... */
const char *lx_dtype_safetensors(lx_dtype t); /* "F32", ... */
int lx_dtype_is_float(lx_dtype t);

/* Converts t's elements to float or int32. To float: any dtype (integers and booleans, as masks are often
 * written, are taken as their values). To int32: any integer or boolean dtype; a float dtype is an error, and
 * so is an integer value outside the int32 range. field is for messages. */
lx_status lx_tensor_to_f32(const lx_tensor *t, float *dst, const char *field, lx_err *e);
lx_status lx_tensor_to_i32(const lx_tensor *t, int32_t *dst, const char *field, lx_err *e);

float lx_half_to_float(uint16_t h);
float lx_bf16_to_float(uint16_t h);
uint16_t lx_float_to_half(float f);
uint16_t lx_float_to_bf16(float f);

/* ---- the stream ------------------------------------------------------------------------------------- */
/*
 * A stream is a concatenation of msgpack maps, one record each (formats/stream.md). A record keeps the
 * fields it was read with, unchanged, and the fields a tool adds; a field added under an existing key
 * replaces it. Tensors are maps in the layout of msgpack-numpy.
 */

/* The limits of one record, the same in every reader and in lx-tokenize, which makes records from JSON
 * (lx-limits(7)): containers nested at most LX_RECORD_MAX_DEPTH deep (the record's map is the first level;
 * an empty container is no level), at most LX_RECORD_MAX_VALUES values (a key is one, a tensor a few) and
 * LX_RECORD_MAX_BYTES (256 MiB) bytes. */
#define LX_RECORD_MAX_DEPTH 32
#define LX_RECORD_MAX_VALUES ((uint64_t)1 << 20)
#define LX_RECORD_MAX_BYTES ((size_t)1 << 28)

typedef struct lx_record lx_record;
typedef struct lx_reader lx_reader;
typedef struct lx_writer lx_writer;

/* Reads records from f; name is used in messages ("stdin", a path). f is not closed by lx_reader_free.
 * When f is not a regular file (a pipe, a terminal), the reader reads its descriptor with read(2), so that a
 * record is handled as soon as its last byte arrives and SIGINT/SIGTERM end a wait for input: nothing may
 * have been read from f through stdio before. lx_reader_new_buffered reads through stdio only (for a FILE
 * already read from). */
lx_reader *lx_reader_new(FILE *f, const char *name);
lx_reader *lx_reader_new_buffered(FILE *f, const char *name);
/* A descriptor that becomes readable when the process is to stop (the read end of a pipe a signal handler
 * writes to; -1: none, the default), for every reader of the process: a reader reading its descriptor waits
 * for input with poll(2) on both, and fails with EINTR (LX_EIO) once fd is readable, even when the signal came
 * just before the wait began (a flag checked before the read would miss it, and the read would wait for the
 * next input). */
void lx_reader_wake_on(int fd);
void lx_reader_free(lx_reader *r);
/* Reads the next record into a new lx_record (*out, to be freed with lx_record_free).
 * Returns LX_OK with *out set, LX_OK with *out NULL at the clean end of the stream, or an error. */
lx_status lx_reader_next(lx_reader *r, lx_record **out, lx_err *e);
/* Number of records read so far. */
long lx_reader_count(const lx_reader *r);
/* Lowers the most bytes a record may have (LX_RECORD_MAX_BYTES by default) to max, for a tool whose memory
 * model holds several records; the message for a larger one ends with " (option)" when option is not NULL
 * ("--max-record"). A larger record is refused before it is buffered. */
void lx_reader_set_max_bytes(lx_reader *r, size_t max, const char *option);
/* After lx_reader_next failed: 1 if the bad value was a whole msgpack value that is not a map (the reader
 * stands at the next record, so --keep-going may go on), 0 if the stream cannot be read further (bytes that
 * are not msgpack, a truncated record, a read error: there is no record boundary to resynchronise on). */
int lx_reader_resumable(const lx_reader *r);
/* Bytes of the input taken by the records read so far: where the next record starts, counted from where
 * the reader began. */
uint64_t lx_reader_offset(const lx_reader *r);

/* An empty record (for tools that make records from other input). */
lx_record *lx_record_new(void);
void lx_record_free(lx_record *rec);
/* 0-based position of the record in its input stream (-1 for a new record). */
long lx_record_index(const lx_record *rec);
/* The memory a record read holds: its bytes and msgpack-c's object for each of its values. */
size_t lx_record_memory(const lx_record *rec);

/* The value of a field: what the record was read with, or what was added under that key. NULL if absent. */
const msgpack_object *lx_record_get(const lx_record *rec, const char *key);
/* Decodes field key as a tensor. LX_EINPUT if the field is absent (unless optional: then *present = 0) or is
 * not a tensor. A msgpack array of numbers is accepted as a 1-D tensor (I64 or F64). */
lx_status lx_record_tensor(const lx_record *rec, const char *key, lx_tensor *t, int *present, lx_err *e);
/* An optional integer field: a msgpack integer or boolean, or a tensor holding one integer. *present tells
 * whether the record has it; LX_EINPUT naming the field when it is something else. */
lx_status lx_record_int(const lx_record *rec, const char *key, int32_t *v, int *present, lx_err *e);
/* A str as its bytes up to the first NUL, an integer in decimal, anything else as "" (dst is returned). */
const char *lx_object_text(const msgpack_object *o, char *dst, size_t n);
/* A msgpack integer or float as a double in *v: returns 1, or 0 (v untouched) for anything else. */
int lx_object_number(const msgpack_object *o, double *v);
/* The id of a record for messages: the first of question_id, questionId, uid, identifier, img_id and id that
 * is a string or an integer, as text; else "". buf is returned. */
const char *lx_record_id(const lx_record *rec, char *buf, size_t n);

/* The fields a record of a shard carries (--shard K/N, formats/stream.md): its position in the whole input,
 * from 0, and the number of shards. */
#define LX_POSITION "position"
#define LX_SHARDS "shards"

/* Adding fields. Each adds or replaces key; data are copied into the record. */
lx_status lx_record_add_tensor(lx_record *rec, const char *key, lx_dtype dtype, int ndim, const int64_t *shape,
                               const void *data);
lx_status lx_record_add_str(lx_record *rec, const char *key, const char *s, size_t len);
lx_status lx_record_add_int(lx_record *rec, const char *key, int64_t v);
lx_status lx_record_add_float(lx_record *rec, const char *key, double v);
lx_status lx_record_add_object(lx_record *rec, const char *key, const msgpack_object *o);
/* For any other value: returns a packer into which the caller packs exactly one msgpack value for key.
 * Valid until the next call on rec. */
msgpack_packer *lx_record_add_packer(lx_record *rec, const char *key);
/* Drops a field (read or added). */
void lx_record_remove(lx_record *rec, const char *key);

/* Error records (--keep-going, formats/stream.md): a tool that refuses a record writes it out with a str field
 * `error` holding the message, and every tool passes a record that carries a str `error` through untouched.
 * lx_record_is_error tells whether rec carries one; lx_record_set_error adds (or replaces) it, keeping every
 * other field; lx_record_error_new makes a record holding only `error`, for input that is no record. */
int lx_record_is_error(const lx_record *rec);
lx_status lx_record_set_error(lx_record *rec, const char *msg);
lx_record *lx_record_error_new(const char *msg);
/* Undoes every change made to a record since it was read (added, replaced and removed fields), so that an
 * error record holds the input's fields as they came. A new record becomes empty. */
void lx_record_revert(lx_record *rec);

/* Packs a tensor in the msgpack-numpy layout into any packer. */
int lx_pack_tensor(msgpack_packer *pk, lx_dtype dtype, int ndim, const int64_t *shape, const void *data);

/* Writes records to f. lx_writer_put and lx_writer_flush report a failed write as LX_EIO; a reader that went
 * away (EPIPE) is LX_EIO too, and lx_writer_broken_pipe() tells the two apart. */
lx_writer *lx_writer_new(FILE *f, const char *name);
void lx_writer_free(lx_writer *w);
lx_status lx_writer_put(lx_writer *w, const lx_record *rec, lx_err *e);
lx_status lx_writer_flush(lx_writer *w, lx_err *e);
int lx_writer_broken_pipe(const lx_writer *w);

/* ---- time ------------------------------------------------------------------------------------------ */

/* Monotonic seconds. */
double lx_now(void);

/* ---- writing a file atomically ---------------------------------------------------------------------- */

/* Writes path whole or not at all. fn writes the bytes to f, a temporary made beside path
 * ("<dir>/.<base>.tmp-XXXXXX", mkstemp, with the permissions fopen would give), naming path in its messages;
 * then the temporary is flushed, fsync'ed and renamed over path, and path's directory fsync'ed. On any
 * failure the temporary is removed, path is left as it was, and the status is fn's or LX_EIO. A temporary
 * left by a killed writer is removed by lx_clean_stale. */
typedef lx_status (*lx_write_fn)(void *ctx, FILE *f, const char *path, lx_err *e);
lx_status lx_write_atomic(const char *path, lx_write_fn fn, void *ctx, lx_err *e);
/* lx_write_atomic of the n bytes at data. */
lx_status lx_write_file(const char *path, const void *data, size_t n, lx_err *e);

/* ---- one writer per output, directories built aside (lib/core/lock.c) --------------------------------- */
/*
 * An output (a file or a directory) is written by one process at a time, which holds its lock: an fcntl
 * write lock (F_SETLK) on the sidecar "<dir>/.<base>.lock", which holds the writer's pid and is removed when
 * the lock is released. A directory is built under a hidden name beside it (lx_dir_aside) and moved into place
 * whole (lx_dir_publish); what a killed writer left behind is removed by the next one (lx_clean_stale).
 * Where the file system has no locks (ENOLCK, some NFS mounts) the lock is granted without excluding anyone;
 * where it refuses renameat2 (EINVAL: NFS, some Lustre) lx_dir_publish falls back as it says below.
 * A process takes one lock per output (fcntl locks belong to the process, not to the lx_lock).
 */
typedef struct lx_lock lx_lock;

/* Takes path's lock. Held by another process: LX_EUSAGE "path: being written by another process (pid N)";
 * the sidecar cannot be made (no such directory, no permission, read-only file system): LX_EIO. */
lx_status lx_lock_take(const char *path, lx_lock **out, lx_err *e);
/* Removes the sidecar and releases the lock. NULL is fine. */
void lx_lock_release(lx_lock *l);

/* Makes a fresh directory "<dir>/.<base>.tmp-XXXXXX" beside path (with the mode mkdir would give) to build
 * an output in, and puts its name in tmp (n bytes). LX_EIO if it cannot be made, LX_EUSAGE if the name does
 * not fit. */
lx_status lx_dir_aside(const char *path, char *tmp, size_t n, lx_err *e);

/* Moves tmp (a finished directory, or a file) to path: fsyncs tmp when it is a directory (the names made in
 * it), renames, then fsyncs path's directory.
 * replace 0: only if nothing is at path at that moment (renameat2 RENAME_NOREPLACE); LX_EUSAGE
 *   "path: exists" otherwise, tmp left as it is (the caller removes it).
 * replace 1: if something is at path, the two are swapped in one step (RENAME_EXCHANGE, signals held) and the
 *   old one, now under tmp's name, is removed; if its removal fails it is left for lx_clean_stale.
 * Where renameat2 is refused (EINVAL, ENOSYS): replace 0 looks with lstat, then renames (an empty directory
 * made at path in between would be replaced); replace 1 renames path to "<dir>/.<base>.old-XXXXXX", then tmp
 * to path (with signals held; a writer killed between the two leaves no path, and lx_clean_stale puts the old
 * one back). LX_EIO if a rename or the fsync fails. */
lx_status lx_dir_publish(const char *tmp, const char *path, int replace, lx_err *e);

/* Removes the "<dir>/.<base>.tmp-*" and "<dir>/.<base>.old-*" (files and directories) that killed writers
 * of path left; if nothing is at path and an ".old-*" is there, it is moved back to path first. Call it
 * while holding path's lock. LX_EIO naming the first entry that could not be removed. */
lx_status lx_clean_stale(const char *path, lx_err *e);

/* Removes path and, if it is a directory, everything below it (symbolic links are removed, not followed).
 * Nothing at path is fine. LX_EIO naming what could not be removed. */
lx_status lx_remove_tree(const char *path, lx_err *e);

/* fsyncs the directory that holds path, so that a rename or a mkdir there is on the disk. A file system that
 * cannot fsync a directory (EINVAL) is taken as done. LX_EIO otherwise. */
lx_status lx_sync_parent(const char *path, lx_err *e);

#endif
