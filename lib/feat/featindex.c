/* featindex.c - img_id -> (file, byte offset, line) over several feature files, kept in memory or beside
 * each file as FILE.lxidx (formats/featidx.md), and a small LRU cache of decoded images. An index file is a
 * cache: one that does not match its feature file is rebuilt (unless LX_FEAT_INDEX_STRICT), and written back
 * under its lock where it can be. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "feat/feat_impl.h"

#define IDX_MAGIC "lx-featidx 1"

typedef struct {
	char *path;
	char *ipath;         /* its index file; NULL without LX_FEAT_INDEX_FILE */
	int is_npz;
	int from_file;       /* its entries were read from ipath, not scanned in this run: not yet trusted */
	lx_feat_file *f;     /* opened on first use */
} source;

typedef struct {
	uint32_t src;
	uint32_t id_len;
	uint64_t id_off;     /* in the arena */
	lx_feat_pos pos;
	int dead;            /* read from a damaged index and not found again by the scan that replaced it */
} entry;

typedef struct {
	long entry;          /* -1: empty */
	unsigned long used;
	lx_feat_image im;
} slot;

struct lx_feat_index {
	int flags;
	source *src;
	size_t nsrc, src_cap;
	entry *ent;
	size_t nent, ent_cap;
	char *arena;
	size_t arena_len, arena_cap;
	long *table;         /* open addressing: entry numbers, -1 empty */
	size_t table_cap;    /* a power of two */
	slot *cache;
	int ncache;
	unsigned long clock;
	long hits, misses;
	char note[1100];     /* what lx_feat_index_note returns next; "" when nothing */
	char said[1100];     /* what it returned last */
};

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

lx_feat_index *lx_feat_index_new(int flags, int cache_size)
{
	lx_feat_index *ix = calloc(1, sizeof *ix);
	int i;

	if (!ix)
		return NULL;
	ix->flags = flags;
	ix->ncache = cache_size < 1 ? 1 : cache_size;
	if (!(ix->cache = calloc((size_t)ix->ncache, sizeof *ix->cache))) {
		free(ix);
		return NULL;
	}
	for (i = 0; i < ix->ncache; i++)
		ix->cache[i].entry = -1;
	return ix;
}

void lx_feat_index_free(lx_feat_index *ix)
{
	size_t i;

	if (!ix)
		return;
	for (i = 0; i < ix->nsrc; i++) {
		free(ix->src[i].path);
		free(ix->src[i].ipath);
		lx_feat_free(ix->src[i].f);
	}
	for (i = 0; i < (size_t)ix->ncache; i++)
		lx_feat_image_destroy(&ix->cache[i].im);
	free(ix->cache);
	free(ix->src);
	free(ix->ent);
	free(ix->arena);
	free(ix->table);
	free(ix);
}

long lx_feat_index_count(const lx_feat_index *ix)
{
	long n = 0;
	size_t i;

	for (i = 0; i < ix->nent; i++)
		n += !ix->ent[i].dead;
	return n;
}

const char *lx_feat_index_note(lx_feat_index *ix)
{
	if (!ix->note[0])
		return NULL;
	memcpy(ix->said, ix->note, sizeof ix->said);
	ix->note[0] = 0;
	return ix->said;
}

void lx_feat_index_stats(const lx_feat_index *ix, long *hits, long *misses)
{
	*hits = ix->hits;
	*misses = ix->misses;
}

/* ---- the hash table ---- */

static const char *ent_id(const lx_feat_index *ix, const entry *en) { return ix->arena + en->id_off; }

static long lookup(const lx_feat_index *ix, const char *id, size_t len)
{
	size_t mask = ix->table_cap - 1, i;

	if (!ix->table_cap)
		return -1;
	for (i = hash(id, len) & mask;; i = (i + 1) & mask) {
		long k = ix->table[i];
		if (k < 0)
			return -1;
		if (ix->ent[k].id_len == len && memcmp(ent_id(ix, &ix->ent[k]), id, len) == 0)
			return k;
	}
}

static void place(lx_feat_index *ix, long k)
{
	size_t mask = ix->table_cap - 1, i;
	const entry *en = &ix->ent[k];

	for (i = hash(ent_id(ix, en), en->id_len) & mask; ix->table[i] >= 0; i = (i + 1) & mask)
		;
	ix->table[i] = k;
}

static int rehash(lx_feat_index *ix)
{
	size_t cap = ix->table_cap ? ix->table_cap * 2 : 1024, i;
	long *t = malloc(cap * sizeof *t);

	if (!t)
		return 0;
	for (i = 0; i < cap; i++)
		t[i] = -1;
	free(ix->table);
	ix->table = t;
	ix->table_cap = cap;
	for (i = 0; i < ix->nent; i++)
		place(ix, (long)i);
	return 1;
}

static const char *place_name(const lx_feat_index *ix, const entry *en, char *buf, size_t n)
{
	const source *s = &ix->src[en->src];

	if (s->is_npz)
		snprintf(buf, n, "%s", s->path);
	else
		snprintf(buf, n, "%s: %s %ld", s->path,
		         s->f && lx_feat_file_format(s->f) == LX_FEAT_STREAM ? "record" : "line", en->pos.line);
	return buf;
}

typedef struct {
	lx_feat_index *ix;
	uint32_t src;
} add_ctx;

static lx_status add_entry(void *vctx, const char *id, size_t len, lx_feat_pos pos, lx_err *e)
{
	add_ctx *c = vctx;
	lx_feat_index *ix = c->ix;
	entry *en;
	long old;

	if ((old = lookup(ix, id, len)) >= 0 && ix->ent[old].dead && ix->ent[old].src == c->src) {
		ix->ent[old].dead = 0; /* found again by the scan that replaces a damaged index */
		ix->ent[old].pos = pos;
		return LX_OK;
	}
	if (old >= 0) {
		entry here = {c->src, 0, 0, pos, 0};
		char first[600], second[600];
		return lx_errf(e, LX_EINPUT, "%s: img_id %.*s appears twice (first at %s)",
		               place_name(ix, &here, second, sizeof second), (int)len, id,
		               place_name(ix, &ix->ent[old], first, sizeof first));
	}
	if (!feat_grow(&ix->ent, &ix->ent_cap, (ix->nent + 1) * sizeof *ix->ent) ||
	    !feat_grow(&ix->arena, &ix->arena_cap, ix->arena_len + len + 1) ||
	    ((ix->nent + 1) * 2 > ix->table_cap && !rehash(ix)))
		return lx_errf(e, LX_EIO, "out of memory indexing %s", ix->src[c->src].path);
	en = &ix->ent[ix->nent];
	en->src = c->src;
	en->id_len = (uint32_t)len;
	en->id_off = ix->arena_len;
	en->pos = pos;
	en->dead = 0;
	memcpy(ix->arena + ix->arena_len, id, len);
	ix->arena[ix->arena_len + len] = 0;
	ix->arena_len += len + 1;
	place(ix, (long)ix->nent++);
	return LX_OK;
}

/* ---- index files ---- */

static char *idx_path(const char *path)
{
	size_t n = strlen(path);
	char *p = malloc(n + 7);

	if (p)
		memcpy(p, path, n), memcpy(p + n, ".lxidx", 7);
	return p;
}

/* Reads src's index file if it exists (*found 0 if it does not). Anything in it that does not match the
 * feature file (sb) is LX_EMODEL naming the index and what is wrong; entries read before stay, to be
 * replaced by a scan. */
static lx_status idx_read(lx_feat_index *ix, uint32_t src, const struct stat *sb, int *found, lx_err *e)
{
	const char *ipath = ix->src[src].ipath;
	FILE *f = fopen(ipath, "r");
	char *line = NULL;
	size_t cap = 0;
	long long size = -1, sec = -1, nsec = -1, count = -1, n = 0, lineno = 0;
	unsigned long long last_off = 0;
	long last_line = 0;
	char fmt[32] = "";
	add_ctx c = {ix, src};
	lx_status st = LX_OK;
	ssize_t len;

	*found = f != NULL;
	if (!f)
		return errno == ENOENT ? LX_OK : lx_errf(e, LX_EMODEL, "%s: %s", ipath, strerror(errno));
	while (!st && (len = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[len - 1] != '\n') {
			st = lx_errf(e, LX_EMODEL, "%s: line %lld: cut short (no line end)", ipath, lineno);
			break;
		}
		line[--len] = 0;
		if (lineno == 1 && strcmp(line, IDX_MAGIC) != 0)
			st = lx_errf(e, LX_EMODEL, "%s: line 1: not an lx-featidx 1 index", ipath);
		else if (lineno == 2 && sscanf(line, "size %lld mtime %lld.%lld format %31s count %lld", &size, &sec,
		                               &nsec, fmt, &count) != 5)
			st = lx_errf(e, LX_EMODEL, "%s: line 2: expected \"size S mtime T.N format F count C\"", ipath);
		else if (lineno == 2 && (size != (long long)sb->st_size || sec != (long long)sb->st_mtim.tv_sec ||
		                         nsec != (long long)sb->st_mtim.tv_nsec))
			st = lx_errf(e, LX_EMODEL,
			             "%s: stale index: made for %lld bytes modified at %lld.%09lld, the file now has %lld "
			             "bytes modified at %lld.%09lld",
			             ipath, size, sec, nsec, (long long)sb->st_size, (long long)sb->st_mtim.tv_sec,
			             (long long)sb->st_mtim.tv_nsec);
		else if (lineno > 2) {
			unsigned long long off;
			long ln;
			int k = 0;
			if (sscanf(line, "%llu\t%ld\t%n", &off, &ln, &k) != 2 || k == 0 || line[k] == 0)
				st = lx_errf(e, LX_EMODEL, "%s: line %lld: expected \"offset<TAB>line<TAB>img_id\"", ipath, lineno);
			else if (off >= (unsigned long long)sb->st_size || ln < 1)
				st = lx_errf(e, LX_EMODEL, "%s: line %lld: offset %llu or line %ld outside the file (%lld bytes)",
				             ipath, lineno, off, ln, (long long)sb->st_size);
			else if (n && (off <= last_off || ln <= last_line))
				st = lx_errf(e, LX_EMODEL, "%s: line %lld: offset %llu, line %ld after offset %llu, line %ld (the "
				             "entries go up)", ipath, lineno, off, ln, last_off, last_line);
			else if ((st = add_entry(&c, line + k, strlen(line + k), (lx_feat_pos){off, ln}, e)) == LX_OK)
				n++, last_off = off, last_line = ln;
			else if (st == LX_EINPUT)
				st = lx_errf(e, LX_EMODEL, "%s: line %lld: img_id %s twice", ipath, lineno, line + k);
		}
	}
	if (!st && (lineno < 2 || n != count))
		st = lx_errf(e, LX_EMODEL, "%s: holds %lld entries, its header says %lld (truncated index?)", ipath, n,
		             count);
	free(line);
	fclose(f);
	return st;
}

typedef struct {
	const lx_feat_index *ix;
	uint32_t src;
	const struct stat *sb;
	long *order;         /* the source's live entries by offset */
	size_t n;
} idx_out;

static lx_status idx_lines(void *ctx, FILE *f, const char *path, lx_err *e)
{
	const idx_out *o = ctx;
	const lx_feat_index *ix = o->ix;
	size_t i;

	fprintf(f, "%s\nsize %lld mtime %lld.%09lld format %s count %zu\n", IDX_MAGIC, (long long)o->sb->st_size,
	        (long long)o->sb->st_mtim.tv_sec, (long long)o->sb->st_mtim.tv_nsec,
	        lx_feat_format_name(lx_feat_file_format(ix->src[o->src].f)), o->n);
	for (i = 0; i < o->n; i++) {
		const entry *en = &ix->ent[o->order[i]];
		fprintf(f, "%llu\t%ld\t%s\n", (unsigned long long)en->pos.off, en->pos.line, ent_id(ix, en));
	}
	return LX_OK;
}

static const lx_feat_index *order_ix; /* for by_offset: qsort has no context argument */

static int by_offset(const void *a, const void *b)
{
	uint64_t x = order_ix->ent[*(const long *)a].pos.off, y = order_ix->ent[*(const long *)b].pos.off;

	return x < y ? -1 : x > y;
}

/* Writes src's index file under its lock. The index is a cache: whatever stops it from being written (held
 * by another process, which writes the same; a read-only or full disk; an img_id a line cannot hold) leaves
 * it in memory, said in the note when it is worth saying. */
static void idx_store(lx_feat_index *ix, uint32_t src, const struct stat *sb, const char *why)
{
	source *s = &ix->src[src];
	idx_out o = {ix, src, sb, NULL, 0};
	lx_lock *l = NULL;
	lx_err e;
	size_t i;

	if (!(o.order = malloc((ix->nent + 1) * sizeof *o.order))) {
		lx_errf(&e, LX_EIO, "%s: out of memory", s->ipath);
		goto memory;
	}
	for (i = 0; i < ix->nent; i++) {
		const entry *en = &ix->ent[i];
		if (en->src != src || en->dead)
			continue;
		if (strpbrk(ent_id(ix, en), "\t\n")) {
			lx_errf(&e, LX_EINPUT, "%s: %s %ld: an img_id with a TAB or a line end cannot be indexed", s->path,
			        lx_feat_file_format(s->f) == LX_FEAT_STREAM ? "record" : "line", en->pos.line);
			goto memory;
		}
		o.order[o.n++] = (long)i;
	}
	order_ix = ix;
	qsort(o.order, o.n, sizeof *o.order, by_offset);
	if (lx_lock_take(s->ipath, &l, &e) != LX_OK) {
		if (e.status == LX_EUSAGE && !why)
			goto done; /* another run writes the same index: nothing worth saying */
		goto memory;
	}
	if (lx_clean_stale(s->ipath, &e) != LX_OK || lx_write_atomic(s->ipath, idx_lines, &o, &e) != LX_OK)
		goto memory;
	if (why)
		snprintf(ix->note, sizeof ix->note, "%s; rebuilt and written back", why);
	goto done;
memory:
	if (why)
		snprintf(ix->note, sizeof ix->note, "%s; rebuilt, kept in memory (%s)", why, e.msg);
	else
		snprintf(ix->note, sizeof ix->note, "%s: the index is kept in memory", e.msg);
done:
	lx_lock_release(l);
	free(o.order);
}

/* (Re)builds src's entries by reading the feature file: entries an index file gave are dead until the scan
 * finds them again. Then writes the index file (why: what was wrong with the old one, or NULL). */
static lx_status rescan(lx_feat_index *ix, uint32_t src, const struct stat *sb, const char *why, lx_err *e)
{
	source *s = &ix->src[src];
	add_ctx c = {ix, src};
	lx_status st;
	size_t i;

	for (i = 0; i < ix->nent; i++)
		if (ix->ent[i].src == src)
			ix->ent[i].dead = 1;
	s->from_file = 0;
	if ((st = lx_feat_scan(s->f, add_entry, &c, e)))
		return st;
	if (s->ipath)
		idx_store(ix, src, sb, why);
	return LX_OK;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);

	return n >= k && strcmp(s + n - k, suf) == 0;
}

/* Scans (or reads the index of) a TSV or stream file. */
static lx_status add_scanned(lx_feat_index *ix, uint32_t src, lx_err *e)
{
	source *s = &ix->src[src];
	char why[sizeof ix->note - 64];
	struct stat sb;
	int found = 0;
	lx_status st;

	if ((st = lx_feat_open(&s->f, s->path, e)))
		return st;
	if (fstat(fileno(s->f->f), &sb) != 0)
		return lx_errf(e, LX_EMODEL, "%s: %s", s->path, strerror(errno));
	if (!s->ipath)
		return rescan(ix, src, &sb, NULL, e);
	if (ix->flags & LX_FEAT_INDEX_REBUILD)
		return rescan(ix, src, &sb, NULL, e);
	st = idx_read(ix, src, &sb, &found, e);
	if (!st && found) {
		s->from_file = 1;
		return LX_OK;
	}
	if (!st)
		return rescan(ix, src, &sb, NULL, e);
	if (st != LX_EMODEL || (ix->flags & LX_FEAT_INDEX_STRICT)) {
		if (st == LX_EMODEL && strstr(e->msg, ": stale index: "))
			strncat(e->msg, " (rebuild it with --reindex)", sizeof e->msg - strlen(e->msg) - 1);
		return st;
	}
	snprintf(why, sizeof why, "%s", e->msg);
	return rescan(ix, src, &sb, why, e);
}

lx_status lx_feat_index_add_file(lx_feat_index *ix, const char *path, const char *index_path, lx_err *e)
{
	source *s;
	add_ctx c = {ix, (uint32_t)ix->nsrc};
	const char *id;
	size_t len;

	if (!feat_grow(&ix->src, &ix->src_cap, (ix->nsrc + 1) * sizeof *ix->src))
		return lx_errf(e, LX_EIO, "out of memory");
	s = &ix->src[ix->nsrc];
	memset(s, 0, sizeof *s);
	if (!(s->path = strdup(path)))
		return lx_errf(e, LX_EIO, "out of memory");
	s->is_npz = has_suffix(path, ".npz") || has_suffix(path, ".npy");
	ix->nsrc++;
	if (!s->is_npz && (ix->flags & LX_FEAT_INDEX_FILE) &&
	    !(s->ipath = index_path ? strdup(index_path) : idx_path(path)))
		return lx_errf(e, LX_EIO, "out of memory");
	if (!s->is_npz)
		return add_scanned(ix, c.src, e);
	feat_file_id(path, &id, &len);
	return add_entry(&c, id, len, (lx_feat_pos){0, 0}, e);
}

lx_status lx_feat_index_add(lx_feat_index *ix, const char *path, lx_err *e)
{
	return lx_feat_index_add_file(ix, path, NULL, e);
}

/* ---- lookups ---- */

static slot *victim(lx_feat_index *ix)
{
	slot *best = &ix->cache[0];
	int i;

	for (i = 1; i < ix->ncache; i++)
		if (ix->cache[i].entry < 0 || ix->cache[i].used < best->used)
			best = &ix->cache[i];
	return best;
}

static lx_status load(lx_feat_index *ix, long k, slot *sl, lx_err *e)
{
	const entry *en = &ix->ent[k];
	source *s = &ix->src[en->src];
	lx_status st;

	if (!s->f && (st = lx_feat_open(&s->f, s->path, e)))
		return st;
	st = lx_feat_read_at(s->f, en->pos, &sl->im, e);
	if (s->is_npz) {
		lx_feat_free(s->f);
		s->f = NULL;
	}
	if (!st && (sl->im.img_id == NULL || strlen(sl->im.img_id) != en->id_len ||
	            memcmp(sl->im.img_id, ent_id(ix, en), en->id_len) != 0))
		st = lx_errf(e, LX_EMODEL, "%s: %s %ld holds img_id %s, the index says %s (stale index?)", s->path,
		             sl->im.is_record ? "record" : "line", en->pos.line, sl->im.img_id ? sl->im.img_id : "",
		             ent_id(ix, en));
	return st;
}

/* An image that is not where src's index file says (a forged or damaged index that looked whole): with
 * LX_FEAT_INDEX_STRICT an error naming the index (LX_EMODEL); otherwise the file is scanned again, the index
 * rewritten, and id looked up anew. */
static lx_status untrusted(lx_feat_index *ix, uint32_t src, const char *id, size_t len, const lx_feat_image **im,
                           lx_err *e)
{
	source *s = &ix->src[src];
	char why[sizeof ix->note - 64];
	struct stat sb;
	lx_status st;

	snprintf(why, sizeof why, "%s: does not match its file: %s", s->ipath, e->msg);
	if ((ix->flags & LX_FEAT_INDEX_STRICT) && e->status == LX_EMODEL)
		return LX_EMODEL; /* the image found is another one: the message says so */
	if (ix->flags & LX_FEAT_INDEX_STRICT)
		return lx_errf(e, LX_EMODEL, "%s", why);
	if (fstat(fileno(s->f->f), &sb) != 0)
		return lx_errf(e, LX_EMODEL, "%s: %s", s->path, strerror(errno));
	if ((st = rescan(ix, src, &sb, why, e)))
		return st;
	return lx_feat_index_get(ix, id, len, im, e);
}

lx_status lx_feat_index_get(lx_feat_index *ix, const char *id, size_t len, const lx_feat_image **im, lx_err *e)
{
	long k = lookup(ix, id, len);
	slot *sl;
	lx_status st;
	int i;

	*im = NULL;
	if (k >= 0 && ix->ent[k].dead)
		k = -1;
	if (k < 0 && ix->nsrc == 1)
		return lx_errf(e, LX_EINPUT, "img_id %.*s is not in %s", (int)len, id, ix->src[0].path);
	if (k < 0)
		return lx_errf(e, LX_EINPUT, "img_id %.*s is in none of the %zu feature files", (int)len, id, ix->nsrc);
	for (i = 0; i < ix->ncache; i++)
		if (ix->cache[i].entry == k) {
			ix->cache[i].used = ++ix->clock;
			ix->hits++;
			*im = &ix->cache[i].im;
			return LX_OK;
		}
	ix->misses++;
	sl = victim(ix);
	sl->entry = -1;
	if ((st = load(ix, k, sl, e)) && st != LX_EIO && ix->src[ix->ent[k].src].from_file)
		return untrusted(ix, ix->ent[k].src, id, len, im, e);
	if (st)
		return st;
	sl->entry = k;
	sl->used = ++ix->clock;
	*im = &sl->im;
	return LX_OK;
}
