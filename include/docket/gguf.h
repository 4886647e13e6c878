/*
 * GGUF model files (versions 2 and 3): a read-only, validated view.
 *
 * Lifecycle:
 *   1. dk_gguf_open(&g, path) maps the file read-only (MAP_SHARED, so many
 *      processes share one copy of the weights) and validates all of it:
 *      magic, version, counts, every string length, every metadata value
 *      (nested arrays too), every tensor's dims, type, byte size and offset
 *      (inside the file, aligned, row length a multiple of the block size).
 *      Nothing is trusted before it is checked; a hostile file yields
 *      DK_FATAL and a message "cannot load 'x.gguf': <reason>", never a crash.
 *   2. Look up metadata by key (dk_gguf_find) and typed getters.
 *   3. Look up tensors (dk_gguf_tensor_by_name); their data pointers point
 *      into the mapping and stay valid until dk_gguf_free.
 *   4. dk_gguf_free(g).
 *
 * All strings returned are borrowed from the mapping (or the object) and are
 * NOT NUL-terminated in the file: use the length.  Keys returned by the
 * getters are copied into NUL-terminated storage owned by the object.
 */
#ifndef DOCKET_GGUF_H
#define DOCKET_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"

/* Metadata value types, numbered as in the file format. */
enum dk_gguf_vtype {
	DK_GGUF_UINT8 = 0, DK_GGUF_INT8 = 1, DK_GGUF_UINT16 = 2, DK_GGUF_INT16 = 3,
	DK_GGUF_UINT32 = 4, DK_GGUF_INT32 = 5, DK_GGUF_FLOAT32 = 6, DK_GGUF_BOOL = 7,
	DK_GGUF_STRING = 8, DK_GGUF_ARRAY = 9, DK_GGUF_UINT64 = 10, DK_GGUF_INT64 = 11,
	DK_GGUF_FLOAT64 = 12,
	DK_GGUF_VTYPE_COUNT
};

/* Tensor element types, numbered as ggml numbers them in the file. */
enum dk_ttype {
	DK_TYPE_F32 = 0, DK_TYPE_F16 = 1, DK_TYPE_Q4_0 = 2, DK_TYPE_Q4_1 = 3,
	DK_TYPE_Q5_0 = 6, DK_TYPE_Q5_1 = 7, DK_TYPE_Q8_0 = 8, DK_TYPE_Q8_1 = 9,
	DK_TYPE_Q2_K = 10, DK_TYPE_Q3_K = 11, DK_TYPE_Q4_K = 12, DK_TYPE_Q5_K = 13,
	DK_TYPE_Q6_K = 14, DK_TYPE_Q8_K = 15, DK_TYPE_BF16 = 30,
	DK_TYPE_COUNT = 40 /* one past the largest id we know of */
};

struct dk_gguf;

struct dk_gguf_tensor {
	const char *name;     /* NUL-terminated copy, owned by the dk_gguf */
	enum dk_ttype type;
	int n_dims;           /* 1..4 */
	int64_t ne[4];        /* ne[0] = row length (elements); unused dims are 1 */
	uint64_t offset;      /* from the start of the data section */
	size_t nbytes;        /* bytes of data */
	const void *data;     /* into the mapping */
};

/* Opens and validates path.  *out is set whenever memory allows, also on
 * failure, so dk_gguf_error(*out) can be read; free it either way. */
enum dk_status dk_gguf_open(struct dk_gguf **out, const char *path);
/* Same over a caller-owned buffer (borrowed for the object's lifetime);
 * name is used in messages.  For fuzzing and tests. */
enum dk_status dk_gguf_open_memory(struct dk_gguf **out, const void *data, size_t size,
				   const char *name);
void dk_gguf_free(struct dk_gguf *g);
const char *dk_gguf_error(const struct dk_gguf *g);
const char *dk_gguf_path(const struct dk_gguf *g);

uint32_t dk_gguf_version(const struct dk_gguf *g);
size_t dk_gguf_alignment(const struct dk_gguf *g);
size_t dk_gguf_file_size(const struct dk_gguf *g);
/* The whole file as mapped (dk_gguf_file_size bytes), read-only. */
const void *dk_gguf_file_data(const struct dk_gguf *g);

/* ---- metadata ---- */
int64_t dk_gguf_n_kv(const struct dk_gguf *g);
const char *dk_gguf_kv_key(const struct dk_gguf *g, int64_t i);
enum dk_gguf_vtype dk_gguf_kv_type(const struct dk_gguf *g, int64_t i);
/* Index of key, or -1. */
int64_t dk_gguf_find(const struct dk_gguf *g, const char *key);

/* Typed getters by key.  Integers convert between integer types when the
 * value fits; floats accept FLOAT32/FLOAT64.  Return false when the key is
 * missing or the value has another type (out untouched). */
bool dk_gguf_get_u32(const struct dk_gguf *g, const char *key, uint32_t *out);
bool dk_gguf_get_i64(const struct dk_gguf *g, const char *key, int64_t *out);
bool dk_gguf_get_f32(const struct dk_gguf *g, const char *key, float *out);
bool dk_gguf_get_bool(const struct dk_gguf *g, const char *key, bool *out);
/* String value: pointer into the mapping and its length. */
bool dk_gguf_get_str(const struct dk_gguf *g, const char *key, const char **s, size_t *len);

/* Arrays: element type and count.  Nested arrays are validated but only
 * their outer count is exposed. */
bool dk_gguf_get_arr(const struct dk_gguf *g, const char *key, enum dk_gguf_vtype *etype,
		     uint64_t *n);
/* Element j of a string array (pointer into the mapping, length). */
bool dk_gguf_arr_str(const struct dk_gguf *g, const char *key, uint64_t j, const char **s,
		     size_t *len);
/* Raw element data of a numeric array (packed little-endian values). */
const void *dk_gguf_arr_data(const struct dk_gguf *g, const char *key);

/* Generic value access for printing (docket inspect): a short rendering of
 * value i into buf (arrays summarised).  Returns buf. */
char *dk_gguf_kv_render(const struct dk_gguf *g, int64_t i, char *buf, size_t n);

/* ---- tensors ---- */
int64_t dk_gguf_n_tensors(const struct dk_gguf *g);
const struct dk_gguf_tensor *dk_gguf_tensor(const struct dk_gguf *g, int64_t i);
/* The i for which dk_gguf_tensor(g, i) == t, or -1 when t is not g's. */
int64_t dk_gguf_tensor_index(const struct dk_gguf *g, const struct dk_gguf_tensor *t);
const struct dk_gguf_tensor *dk_gguf_tensor_by_name(const struct dk_gguf *g, const char *name);

/* Static name of a tensor type ("q4_k"), or NULL when unknown. */
const char *dk_ttype_name(enum dk_ttype t);
/* Elements per block and bytes per block; 0 when the type is unsupported. */
int dk_ttype_block(enum dk_ttype t);
size_t dk_ttype_block_bytes(enum dk_ttype t);
/* Bytes of a row of n elements (n a multiple of the block). */
size_t dk_ttype_row_bytes(enum dk_ttype t, int64_t n);

#endif
