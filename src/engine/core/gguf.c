/*
 * GGUF reader.  The whole file is validated in dk_gguf_open before anything
 * is handed out, so the rest of the engine can trust what it reads: every
 * read below goes through struct cursor, which refuses to step past the end.
 */
#include "docket/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define MAX_ARRAY_DEPTH 8
#define MAX_DIMS 4

struct kv {
	char *key;
	enum dk_gguf_vtype type;
	const uint8_t *val;        /* start of the value in the mapping */
	enum dk_gguf_vtype etype;  /* arrays: element type */
	uint64_t count;            /* arrays: element count */
	const uint8_t *elems;      /* arrays: first element */
	uint64_t *str_off;         /* string arrays: offset of element j from elems */
};

struct dk_gguf {
	char *path;
	const uint8_t *data;
	size_t size;
	bool mapped;
	uint32_t version;
	size_t alignment;
	size_t data_start;
	int64_t n_kv, n_tensors;
	struct kv *kvs;
	struct dk_gguf_tensor *tensors;
	/* open-addressing indexes of kvs and tensors by name (-1 = empty), so
	 * that duplicate checks and lookups stay linear in the counts */
	int64_t *kslot, *tslot;
	size_t kmask, tmask;
	uint64_t seed;
	char err[DK_ERRMSG_MAX];
};

/* ---- tensor type table (the file format's block geometry) ---- */

static const struct {
	const char *name;
	int blck;
	size_t bytes;
} ttypes[DK_TYPE_COUNT] = {
	[DK_TYPE_F32] = {"f32", 1, 4},       [DK_TYPE_F16] = {"f16", 1, 2},
	[DK_TYPE_Q4_0] = {"q4_0", 32, 18},   [DK_TYPE_Q4_1] = {"q4_1", 32, 20},
	[DK_TYPE_Q5_0] = {"q5_0", 32, 22},   [DK_TYPE_Q5_1] = {"q5_1", 32, 24},
	[DK_TYPE_Q8_0] = {"q8_0", 32, 34},   [DK_TYPE_Q8_1] = {"q8_1", 32, 36},
	[DK_TYPE_Q2_K] = {"q2_k", 256, 84},  [DK_TYPE_Q3_K] = {"q3_k", 256, 110},
	[DK_TYPE_Q4_K] = {"q4_k", 256, 144}, [DK_TYPE_Q5_K] = {"q5_k", 256, 176},
	[DK_TYPE_Q6_K] = {"q6_k", 256, 210}, [DK_TYPE_Q8_K] = {"q8_k", 256, 292},
	[DK_TYPE_BF16] = {"bf16", 1, 2},
};

const char *dk_ttype_name(enum dk_ttype t)
{
	return (unsigned)t < DK_TYPE_COUNT ? ttypes[t].name : NULL;
}

int dk_ttype_block(enum dk_ttype t)
{
	return (unsigned)t < DK_TYPE_COUNT ? ttypes[t].blck : 0;
}

size_t dk_ttype_block_bytes(enum dk_ttype t)
{
	return (unsigned)t < DK_TYPE_COUNT ? ttypes[t].bytes : 0;
}

size_t dk_ttype_row_bytes(enum dk_ttype t, int64_t n)
{
	int b = dk_ttype_block(t);
	return b ? (size_t)(n / b) * ttypes[t].bytes : 0;
}

/* ---- bounded reading ---- */

struct cursor {
	const uint8_t *p, *end;
	struct dk_gguf *g;
};

static bool need(struct cursor *c, uint64_t n, const char *what)
{
	if ((uint64_t)(c->end - c->p) < n) {
		dk_err(c->g->err, sizeof c->g->err, DK_FATAL,
		       "cannot load '%s': truncated file (reading %s at offset %zu)", c->g->path,
		       what, (size_t)(c->p - c->g->data));
		return false;
	}
	return true;
}

static bool rd_u32(struct cursor *c, uint32_t *v, const char *what)
{
	if (!need(c, 4, what))
		return false;
	memcpy(v, c->p, 4);
	c->p += 4;
	return true;
}

static bool rd_u64(struct cursor *c, uint64_t *v, const char *what)
{
	if (!need(c, 8, what))
		return false;
	memcpy(v, c->p, 8);
	c->p += 8;
	return true;
}

/* A string is u64 length + bytes; returns pointer and length. */
static bool rd_str(struct cursor *c, const char **s, uint64_t *len, const char *what)
{
	if (!rd_u64(c, len, what))
		return false;
	if (!need(c, *len, what))
		return false;
	*s = (const char *)c->p;
	c->p += *len;
	return true;
}

static size_t scalar_size(enum dk_gguf_vtype t)
{
	switch (t) {
	case DK_GGUF_UINT8: case DK_GGUF_INT8: case DK_GGUF_BOOL: return 1;
	case DK_GGUF_UINT16: case DK_GGUF_INT16: return 2;
	case DK_GGUF_UINT32: case DK_GGUF_INT32: case DK_GGUF_FLOAT32: return 4;
	case DK_GGUF_UINT64: case DK_GGUF_INT64: case DK_GGUF_FLOAT64: return 8;
	default: return 0;
	}
}

static const char *vtype_name(enum dk_gguf_vtype t)
{
	static const char *n[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
				  "str", "arr", "u64", "i64", "f64"};
	return (unsigned)t < DK_GGUF_VTYPE_COUNT ? n[t] : "?";
}

static bool skip_value(struct cursor *c, enum dk_gguf_vtype t, int depth, const char *key);

static bool skip_array(struct cursor *c, int depth, const char *key, enum dk_gguf_vtype *et,
		       uint64_t *count)
{
	uint32_t e;
	if (depth > MAX_ARRAY_DEPTH) {
		dk_err(c->g->err, sizeof c->g->err, DK_FATAL,
		       "cannot load '%s': arrays nested deeper than %d in '%s'", c->g->path,
		       MAX_ARRAY_DEPTH, key);
		return false;
	}
	if (!rd_u32(c, &e, "array type") || !rd_u64(c, count, "array length"))
		return false;
	if (e >= DK_GGUF_VTYPE_COUNT) {
		dk_err(c->g->err, sizeof c->g->err, DK_FATAL,
		       "cannot load '%s': unknown array element type %u in '%s'", c->g->path, e, key);
		return false;
	}
	*et = (enum dk_gguf_vtype)e;
	size_t sz = scalar_size(*et);
	if (sz) {
		if (*count > (uint64_t)(c->end - c->p) / sz)
			return need(c, UINT64_MAX, key);
		c->p += *count * sz;
		return true;
	}
	/* strings and nested arrays: each needs at least 8 bytes, which bounds
	 * the loop by the file size even for a hostile count */
	if (*count > (uint64_t)(c->end - c->p) / 8)
		return need(c, UINT64_MAX, key);
	for (uint64_t i = 0; i < *count; i++)
		if (!skip_value(c, *et, depth + 1, key))
			return false;
	return true;
}

static bool skip_value(struct cursor *c, enum dk_gguf_vtype t, int depth, const char *key)
{
	size_t sz = scalar_size(t);
	if (sz) {
		if (!need(c, sz, key))
			return false;
		if (t == DK_GGUF_BOOL && *c->p > 1) {
			dk_err(c->g->err, sizeof c->g->err, DK_FATAL,
			       "cannot load '%s': bool value %u in '%s'", c->g->path, *c->p, key);
			return false;
		}
		c->p += sz;
		return true;
	}
	if (t == DK_GGUF_STRING) {
		const char *s;
		uint64_t n;
		return rd_str(c, &s, &n, key);
	}
	if (t == DK_GGUF_ARRAY) {
		enum dk_gguf_vtype et;
		uint64_t n;
		return skip_array(c, depth, key, &et, &n);
	}
	dk_err(c->g->err, sizeof c->g->err, DK_FATAL, "cannot load '%s': unknown value type %u in '%s'",
	       c->g->path, (unsigned)t, key);
	return false;
}

static bool has_nul(const char *s, uint64_t n) { return memchr(s, 0, n) != NULL; }

/* ---- name indexes ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Seeded per object, so a file cannot be crafted to collide every name. */
static uint64_t name_hash(const struct dk_gguf *g, const char *s)
{
	size_t n = strlen(s);
	uint64_t h = g->seed ^ (n * 0x9e3779b97f4a7c15ull);
	for (; n >= 8; n -= 8, s += 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = mix64(h ^ w) + 0x9e3779b97f4a7c15ull;
	}
	uint64_t w = 0;
	memcpy(&w, s, n);
	return mix64(h ^ w ^ ((uint64_t)n << 56));
}

static int64_t *new_index(uint64_t count, size_t *mask)
{
	size_t cap = 16;
	while (cap < 2 * count)
		cap *= 2;
	int64_t *t = malloc(cap * sizeof *t);
	if (t)
		memset(t, 0xff, cap * sizeof *t);
	*mask = cap - 1;
	return t;
}

/* Slot of name in an index whose entries are named by name_at(i): either
 * the slot holding it or the empty slot where it belongs. */
static size_t index_slot(const struct dk_gguf *g, const int64_t *slots, size_t mask, const char *name,
			 bool tensors)
{
	size_t j = (size_t)name_hash(g, name) & mask;
	for (int64_t i; (i = slots[j]) >= 0; j = (j + 1) & mask)
		if (!strcmp(tensors ? g->tensors[i].name : g->kvs[i].key, name))
			break;
	return j;
}

static enum dk_status parse(struct dk_gguf *g)
{
	struct cursor c = {g->data, g->data + g->size, g};
	char *e = g->err;
	size_t en = sizeof g->err;
	uint32_t magic;
	uint64_t n_tensors, n_kv;

	if (!rd_u32(&c, &magic, "magic"))
		return DK_FATAL;
	if (magic != GGUF_MAGIC)
		return dk_err(e, en, DK_FATAL, "cannot load '%s': not a GGUF file (bad magic)", g->path);
	if (!rd_u32(&c, &g->version, "version"))
		return DK_FATAL;
	if (g->version != 2 && g->version != 3)
		return dk_err(e, en, DK_FATAL, "cannot load '%s': unsupported GGUF version %u (need 2 or 3)",
			      g->path, g->version);
	if (!rd_u64(&c, &n_tensors, "tensor count") || !rd_u64(&c, &n_kv, "metadata count"))
		return DK_FATAL;
	/* each kv needs >= 12 bytes, each tensor info >= 24: bound the counts by
	 * the file size before allocating anything */
	size_t left = (size_t)(c.end - c.p);
	if (n_kv > left / 12 || n_tensors > left / 24)
		return dk_err(e, en, DK_FATAL,
			      "cannot load '%s': counts (%" PRIu64 " metadata, %" PRIu64
			      " tensors) exceed the file size",
			      g->path, n_kv, n_tensors);
	g->n_kv = (int64_t)n_kv;
	g->n_tensors = (int64_t)n_tensors;
	g->kvs = calloc(n_kv ? n_kv : 1, sizeof *g->kvs);
	g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
	g->kslot = new_index(n_kv, &g->kmask);
	g->tslot = new_index(n_tensors, &g->tmask);
	if (!g->kvs || !g->tensors || !g->kslot || !g->tslot)
		return dk_err(e, en, DK_FATAL, "cannot load '%s': out of memory", g->path);

	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	for (uint64_t i = 0; i < n_kv; i++) {
		struct kv *kv = &g->kvs[i];
		const char *k;
		uint64_t klen;
		uint32_t t;
		if (!rd_str(&c, &k, &klen, "metadata key"))
			return DK_FATAL;
		if (klen == 0 || klen > 65535 || has_nul(k, klen))
			return dk_err(e, en, DK_FATAL, "cannot load '%s': bad metadata key #%" PRIu64,
				      g->path, i);
		kv->key = strndup(k, klen);
		if (!kv->key)
			return dk_err(e, en, DK_FATAL, "cannot load '%s': out of memory", g->path);
		size_t slot = index_slot(g, g->kslot, g->kmask, kv->key, false);
		if (g->kslot[slot] >= 0)
			return dk_err(e, en, DK_FATAL, "cannot load '%s': duplicate key '%s'", g->path,
				      kv->key);
		g->kslot[slot] = (int64_t)i;
		if (!rd_u32(&c, &t, kv->key))
			return DK_FATAL;
		if (t >= DK_GGUF_VTYPE_COUNT)
			return dk_err(e, en, DK_FATAL, "cannot load '%s': unknown type %u of '%s'",
				      g->path, t, kv->key);
		kv->type = (enum dk_gguf_vtype)t;
		kv->val = c.p;
		if (kv->type == DK_GGUF_ARRAY) {
			if (!skip_array(&c, 0, kv->key, &kv->etype, &kv->count))
				return DK_FATAL;
			kv->elems = kv->val + 12;
			if (kv->etype == DK_GGUF_STRING) {
				kv->str_off = malloc((kv->count ? kv->count : 1) * sizeof *kv->str_off);
				if (!kv->str_off)
					return dk_err(e, en, DK_FATAL, "cannot load '%s': out of memory",
						      g->path);
				uint64_t off = 0;
				for (uint64_t j = 0; j < kv->count; j++) {
					uint64_t len;
					kv->str_off[j] = off;
					memcpy(&len, kv->elems + off, 8);
					off += 8 + len;
				}
			}
		} else if (!skip_value(&c, kv->type, 0, kv->key)) {
			return DK_FATAL;
		}
		if (!strcmp(kv->key, "general.alignment")) {
			uint32_t a;
			if (kv->type != DK_GGUF_UINT32)
				return dk_err(e, en, DK_FATAL,
					      "cannot load '%s': general.alignment is not u32", g->path);
			memcpy(&a, kv->val, 4);
			if (a == 0 || (a & (a - 1)) || a > (1u << 20))
				return dk_err(e, en, DK_FATAL,
					      "cannot load '%s': alignment %u is not a power of two",
					      g->path, a);
			g->alignment = a;
		}
	}

	for (uint64_t i = 0; i < n_tensors; i++) {
		struct dk_gguf_tensor *t = &g->tensors[i];
		const char *name;
		uint64_t nlen, off;
		uint32_t nd, type;
		if (!rd_str(&c, &name, &nlen, "tensor name"))
			return DK_FATAL;
		if (nlen == 0 || nlen > 255 || has_nul(name, nlen))
			return dk_err(e, en, DK_FATAL, "cannot load '%s': bad name of tensor #%" PRIu64,
				      g->path, i);
		t->name = strndup(name, nlen);
		if (!t->name)
			return dk_err(e, en, DK_FATAL, "cannot load '%s': out of memory", g->path);
		if (!rd_u32(&c, &nd, t->name))
			return DK_FATAL;
		if (nd < 1 || nd > MAX_DIMS)
			return dk_err(e, en, DK_FATAL, "cannot load '%s': tensor '%s' has %u dimensions",
				      g->path, t->name, nd);
		t->n_dims = (int)nd;
		for (int d = 0; d < MAX_DIMS; d++)
			t->ne[d] = 1;
		uint64_t nel = 1;
		for (uint32_t d = 0; d < nd; d++) {
			uint64_t v;
			if (!rd_u64(&c, &v, t->name))
				return DK_FATAL;
			if (v == 0 || v > (uint64_t)INT64_MAX / nel)
				return dk_err(e, en, DK_FATAL,
					      "cannot load '%s': tensor '%s' has a bad dimension %" PRIu64,
					      g->path, t->name, v);
			t->ne[d] = (int64_t)v;
			nel *= v;
		}
		if (!rd_u32(&c, &type, t->name) || !rd_u64(&c, &off, t->name))
			return DK_FATAL;
		if (type >= DK_TYPE_COUNT || !ttypes[type].name)
			return dk_err(e, en, DK_FATAL,
				      "cannot load '%s': tensor '%s' has unsupported type %u", g->path,
				      t->name, type);
		t->type = (enum dk_ttype)type;
		if (t->ne[0] % ttypes[type].blck)
			return dk_err(e, en, DK_FATAL,
				      "cannot load '%s': tensor '%s' row of %" PRId64
				      " is not a multiple of the %s block (%d)",
				      g->path, t->name, t->ne[0], ttypes[type].name, ttypes[type].blck);
		uint64_t rows = nel / (uint64_t)t->ne[0];
		uint64_t rowb = (uint64_t)t->ne[0] / ttypes[type].blck * ttypes[type].bytes;
		if (rows && rowb > UINT64_MAX / rows)
			return dk_err(e, en, DK_FATAL, "cannot load '%s': tensor '%s' is too large",
				      g->path, t->name);
		t->nbytes = rows * rowb;
		t->offset = off;
		size_t slot = index_slot(g, g->tslot, g->tmask, t->name, true);
		if (g->tslot[slot] >= 0)
			return dk_err(e, en, DK_FATAL, "cannot load '%s': duplicate tensor '%s'",
				      g->path, t->name);
		g->tslot[slot] = (int64_t)i;
	}

	size_t pos = (size_t)(c.p - g->data);
	size_t a = g->alignment;
	g->data_start = (pos + a - 1) / a * a;
	if (n_tensors && g->data_start > g->size)
		return dk_err(e, en, DK_FATAL, "cannot load '%s': truncated file (no tensor data)",
			      g->path);
	uint64_t avail = g->size > g->data_start ? g->size - g->data_start : 0;
	for (uint64_t i = 0; i < n_tensors; i++) {
		struct dk_gguf_tensor *t = &g->tensors[i];
		if (t->offset % a)
			return dk_err(e, en, DK_FATAL,
				      "cannot load '%s': tensor '%s' offset %" PRIu64 " is not aligned to %zu",
				      g->path, t->name, t->offset, a);
		if (t->offset > avail || t->nbytes > avail - t->offset)
			return dk_err(e, en, DK_FATAL,
				      "cannot load '%s': tensor '%s' (%zu bytes at %" PRIu64
				      ") lies outside the file: truncated?",
				      g->path, t->name, t->nbytes, t->offset);
		t->data = g->data + g->data_start + t->offset;
	}
	return DK_OK;
}

static struct dk_gguf *alloc_gguf(const char *name)
{
	struct dk_gguf *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->path = strdup(name ? name : "(memory)");
	if (!g->path) {
		free(g);
		return NULL;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	g->seed = mix64((uint64_t)(uintptr_t)g ^ mix64((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32));
	return g;
}

enum dk_status dk_gguf_open_memory(struct dk_gguf **out, const void *data, size_t size,
				   const char *name)
{
	struct dk_gguf *g = alloc_gguf(name);
	*out = g;
	if (!g)
		return DK_FATAL;
	g->data = data;
	g->size = size;
	return parse(g);
}

enum dk_status dk_gguf_open(struct dk_gguf **out, const char *path)
{
	struct dk_gguf *g = alloc_gguf(path);
	*out = g;
	if (!g)
		return DK_FATAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dk_err(g->err, sizeof g->err, DK_FATAL, "cannot load '%s': %s", path,
			      strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		int en = errno;
		close(fd);
		return dk_err(g->err, sizeof g->err, DK_FATAL, "cannot load '%s': %s", path,
			      S_ISDIR(st.st_mode) ? "is a directory" : en ? strerror(en) : "not a regular file");
	}
	if (st.st_size == 0) {
		close(fd);
		return dk_err(g->err, sizeof g->err, DK_FATAL, "cannot load '%s': empty file", path);
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return dk_err(g->err, sizeof g->err, DK_FATAL, "cannot load '%s': mmap: %s", path,
			      strerror(errno));
	g->data = p;
	g->size = (size_t)st.st_size;
	g->mapped = true;
	return parse(g);
}

void dk_gguf_free(struct dk_gguf *g)
{
	if (!g)
		return;
	if (g->kvs)
		for (int64_t i = 0; i < g->n_kv; i++) {
			free(g->kvs[i].key);
			free(g->kvs[i].str_off);
		}
	if (g->tensors)
		for (int64_t i = 0; i < g->n_tensors; i++)
			free((char *)g->tensors[i].name);
	free(g->kvs);
	free(g->tensors);
	free(g->kslot);
	free(g->tslot);
	if (g->mapped)
		munmap((void *)g->data, g->size);
	free(g->path);
	free(g);
}

const char *dk_gguf_error(const struct dk_gguf *g) { return g ? g->err : "out of memory"; }
const char *dk_gguf_path(const struct dk_gguf *g) { return g->path; }
uint32_t dk_gguf_version(const struct dk_gguf *g) { return g->version; }
size_t dk_gguf_alignment(const struct dk_gguf *g) { return g->alignment; }
size_t dk_gguf_file_size(const struct dk_gguf *g) { return g->size; }
const void *dk_gguf_file_data(const struct dk_gguf *g) { return g->data; }
int64_t dk_gguf_n_kv(const struct dk_gguf *g) { return g->n_kv; }
int64_t dk_gguf_n_tensors(const struct dk_gguf *g) { return g->n_tensors; }

const char *dk_gguf_kv_key(const struct dk_gguf *g, int64_t i)
{
	return i >= 0 && i < g->n_kv ? g->kvs[i].key : NULL;
}

enum dk_gguf_vtype dk_gguf_kv_type(const struct dk_gguf *g, int64_t i)
{
	return i >= 0 && i < g->n_kv ? g->kvs[i].type : DK_GGUF_VTYPE_COUNT;
}

int64_t dk_gguf_find(const struct dk_gguf *g, const char *key)
{
	if (!g->kslot)
		return -1;
	return g->kslot[index_slot(g, g->kslot, g->kmask, key, false)];
}

static const struct kv *find_kv(const struct dk_gguf *g, const char *key)
{
	int64_t i = dk_gguf_find(g, key);
	return i < 0 ? NULL : &g->kvs[i];
}

/* Reads an integer-typed value at p as int64 (u64 beyond INT64_MAX fails). */
static bool int_at(enum dk_gguf_vtype t, const uint8_t *p, int64_t *v)
{
	switch (t) {
	case DK_GGUF_UINT8: *v = *p; return true;
	case DK_GGUF_INT8: *v = (int8_t)*p; return true;
	case DK_GGUF_BOOL: *v = *p; return true;
	case DK_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); *v = x; return true; }
	case DK_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); *v = x; return true; }
	case DK_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); *v = x; return true; }
	case DK_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); *v = x; return true; }
	case DK_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); *v = x; return true; }
	case DK_GGUF_UINT64: {
		uint64_t x;
		memcpy(&x, p, 8);
		if (x > INT64_MAX)
			return false;
		*v = (int64_t)x;
		return true;
	}
	default: return false;
	}
}

bool dk_gguf_get_i64(const struct dk_gguf *g, const char *key, int64_t *out)
{
	const struct kv *kv = find_kv(g, key);
	int64_t v;
	if (!kv || kv->type == DK_GGUF_BOOL || !int_at(kv->type, kv->val, &v))
		return false;
	*out = v;
	return true;
}

bool dk_gguf_get_u32(const struct dk_gguf *g, const char *key, uint32_t *out)
{
	int64_t v;
	if (!dk_gguf_get_i64(g, key, &v) || v < 0 || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

bool dk_gguf_get_f32(const struct dk_gguf *g, const char *key, float *out)
{
	const struct kv *kv = find_kv(g, key);
	if (!kv)
		return false;
	if (kv->type == DK_GGUF_FLOAT32) {
		memcpy(out, kv->val, 4);
		return true;
	}
	if (kv->type == DK_GGUF_FLOAT64) {
		double d;
		memcpy(&d, kv->val, 8);
		*out = (float)d;
		return true;
	}
	return false;
}

bool dk_gguf_get_bool(const struct dk_gguf *g, const char *key, bool *out)
{
	const struct kv *kv = find_kv(g, key);
	if (!kv || kv->type != DK_GGUF_BOOL)
		return false;
	*out = *kv->val != 0;
	return true;
}

bool dk_gguf_get_str(const struct dk_gguf *g, const char *key, const char **s, size_t *len)
{
	const struct kv *kv = find_kv(g, key);
	if (!kv || kv->type != DK_GGUF_STRING)
		return false;
	uint64_t n;
	memcpy(&n, kv->val, 8);
	*s = (const char *)kv->val + 8;
	*len = (size_t)n;
	return true;
}

bool dk_gguf_get_arr(const struct dk_gguf *g, const char *key, enum dk_gguf_vtype *etype,
		     uint64_t *n)
{
	const struct kv *kv = find_kv(g, key);
	if (!kv || kv->type != DK_GGUF_ARRAY)
		return false;
	*etype = kv->etype;
	*n = kv->count;
	return true;
}

bool dk_gguf_arr_str(const struct dk_gguf *g, const char *key, uint64_t j, const char **s,
		     size_t *len)
{
	const struct kv *kv = find_kv(g, key);
	if (!kv || kv->type != DK_GGUF_ARRAY || kv->etype != DK_GGUF_STRING || j >= kv->count)
		return false;
	uint64_t n;
	memcpy(&n, kv->elems + kv->str_off[j], 8);
	*s = (const char *)kv->elems + kv->str_off[j] + 8;
	*len = (size_t)n;
	return true;
}

const void *dk_gguf_arr_data(const struct dk_gguf *g, const char *key)
{
	const struct kv *kv = find_kv(g, key);
	if (!kv || kv->type != DK_GGUF_ARRAY || !scalar_size(kv->etype))
		return NULL;
	return kv->elems;
}

static void render_scalar(enum dk_gguf_vtype t, const uint8_t *p, char *buf, size_t n)
{
	int64_t v;
	if (t == DK_GGUF_FLOAT32) {
		float f;
		memcpy(&f, p, 4);
		snprintf(buf, n, "%g", (double)f);
	} else if (t == DK_GGUF_FLOAT64) {
		double d;
		memcpy(&d, p, 8);
		snprintf(buf, n, "%g", d);
	} else if (t == DK_GGUF_BOOL) {
		snprintf(buf, n, "%s", *p ? "true" : "false");
	} else if (t == DK_GGUF_UINT64) {
		uint64_t u;
		memcpy(&u, p, 8);
		snprintf(buf, n, "%" PRIu64, u);
	} else if (int_at(t, p, &v)) {
		snprintf(buf, n, "%" PRId64, v);
	} else {
		snprintf(buf, n, "?");
	}
}

char *dk_gguf_kv_render(const struct dk_gguf *g, int64_t i, char *buf, size_t n)
{
	if (!n)
		return buf;
	buf[0] = 0;
	if (i < 0 || i >= g->n_kv)
		return buf;
	const struct kv *kv = &g->kvs[i];
	if (kv->type == DK_GGUF_STRING) {
		uint64_t len;
		memcpy(&len, kv->val, 8);
		snprintf(buf, n, "%.*s", (int)(len > 4096 ? 4096 : len), (const char *)kv->val + 8);
	} else if (kv->type == DK_GGUF_ARRAY) {
		size_t o = (size_t)snprintf(buf, n, "[%s x %" PRIu64 "]", vtype_name(kv->etype),
					    kv->count);
		size_t sz = scalar_size(kv->etype);
		for (uint64_t j = 0; j < kv->count && j < 8 && o + 32 < n; j++) {
			char tmp[64];
			if (sz) {
				render_scalar(kv->etype, kv->elems + j * sz, tmp, sizeof tmp);
			} else if (kv->etype == DK_GGUF_STRING) {
				const char *s;
				size_t len;
				dk_gguf_arr_str(g, kv->key, j, &s, &len);
				snprintf(tmp, sizeof tmp, "'%.*s'", (int)(len > 24 ? 24 : len), s);
			} else {
				snprintf(tmp, sizeof tmp, "[...]");
			}
			o += (size_t)snprintf(buf + o, n - o, "%s%s", j ? ", " : " ", tmp);
		}
		if (kv->count > 8 && o + 5 < n)
			snprintf(buf + o, n - o, ", ...");
	} else {
		render_scalar(kv->type, kv->val, buf, n);
	}
	return buf;
}

const struct dk_gguf_tensor *dk_gguf_tensor(const struct dk_gguf *g, int64_t i)
{
	return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

int64_t dk_gguf_tensor_index(const struct dk_gguf *g, const struct dk_gguf_tensor *t)
{
	/* pointer comparison only within the array: compare addresses as integers */
	uintptr_t a = (uintptr_t)g->tensors, p = (uintptr_t)t;
	if (!t || p < a || p >= a + (uintptr_t)g->n_tensors * sizeof *t || (p - a) % sizeof *t)
		return -1;
	return (int64_t)((p - a) / sizeof *t);
}

const struct dk_gguf_tensor *dk_gguf_tensor_by_name(const struct dk_gguf *g, const char *name)
{
	if (!g->tslot)
		return NULL;
	int64_t i = g->tslot[index_slot(g, g->tslot, g->tmask, name, true)];
	return i < 0 ? NULL : &g->tensors[i];
}
