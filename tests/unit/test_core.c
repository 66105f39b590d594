/* Unit tests of liblx's small pieces: half-precision conversion (values worked out by hand from the IEEE
 * layouts), record fields (add, replace, remove), and the tensor layout on the wire. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lx.h"
#include "check.h"

static void halves(void)
{
	CHECK(lx_half_to_float(0x3c00) == 1.0f);
	CHECK(lx_half_to_float(0xc000) == -2.0f);
	CHECK(lx_half_to_float(0x7bff) == 65504.0f);
	CHECK(lx_half_to_float(0x0001) == ldexpf(1, -24)); /* smallest subnormal */
	CHECK(lx_half_to_float(0x0400) == ldexpf(1, -14)); /* smallest normal */
	CHECK(isinf(lx_half_to_float(0x7c00)));
	CHECK(isnan(lx_half_to_float(0x7e00)));
	CHECK(lx_float_to_half(1.0f) == 0x3c00);
	CHECK(lx_float_to_half(0.1f) == 0x2e66);       /* 0.0999755859375 */
	CHECK(lx_float_to_half(65504.0f) == 0x7bff);
	CHECK(lx_float_to_half(65520.0f) == 0x7c00);   /* rounds up to infinity */
	CHECK(lx_float_to_half(ldexpf(1, -24)) == 0x0001);
	CHECK(lx_float_to_half(ldexpf(1, -26)) == 0x0000); /* below half the smallest subnormal */
	CHECK(lx_float_to_half(1.0f + ldexpf(1, -11)) == 0x3c00); /* a tie goes to the even mantissa */
	CHECK(lx_float_to_half(1.0f + 3 * ldexpf(1, -11)) == 0x3c02);
	CHECK(lx_bf16_to_float(0x3f80) == 1.0f);
	CHECK(lx_bf16_to_float(0xc0a0) == -5.0f);
	CHECK(lx_float_to_bf16(1.0f) == 0x3f80);
	CHECK(lx_float_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80);     /* tie to even */
	CHECK(lx_float_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82); /* tie to even, upwards */
}

static void fields(void)
{
	lx_record *rec = lx_record_new();
	const msgpack_object *o;
	float v[6] = {1, 2, 3, 4, 5, 6};
	int64_t shape[2] = {2, 3};
	lx_tensor t;
	lx_err e;

	CHECK(lx_record_add_str(rec, "sent", "a dog", 5) == LX_OK);
	CHECK(lx_record_add_int(rec, "question_id", 42) == LX_OK);
	CHECK(lx_record_add_tensor(rec, "x", LX_F32, 2, shape, v) == LX_OK);
	o = lx_record_get(rec, "sent");
	CHECK(o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == 5);
	CHECK(lx_record_add_str(rec, "sent", "a cat!", 6) == LX_OK); /* replaces */
	o = lx_record_get(rec, "sent");
	CHECK(o && o->via.str.size == 6 && memcmp(o->via.str.ptr, "a cat!", 6) == 0);
	CHECK(lx_record_tensor(rec, "x", &t, NULL, &e) == LX_OK);
	CHECK(t.dtype == LX_F32 && t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 3 && t.numel == 6);
	CHECK(memcmp(t.data, v, sizeof v) == 0);
	lx_record_remove(rec, "question_id");
	CHECK(lx_record_get(rec, "question_id") == NULL);
	CHECK(lx_record_tensor(rec, "nope", &t, NULL, &e) == LX_EINPUT);
	CHECK(strcmp(e.msg, "missing field nope") == 0);
	lx_record_free(rec);
}

/* The msgpack-numpy layout, byte for byte: a map of 5 with bin keys. */
static void wire(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int32_t v[2] = {7, -1};
	int64_t shape[1] = {2};
	static const unsigned char want[] = {
		0x85, 0xc4, 2, 'n', 'd', 0xc3, 0xc4, 4, 't', 'y', 'p', 'e', 0xa3, '<', 'i', '4',
		0xc4, 4, 'k', 'i', 'n', 'd', 0xc4, 0, 0xc4, 5, 's', 'h', 'a', 'p', 'e', 0x91, 2,
		0xc4, 4, 'd', 'a', 't', 'a', 0xc4, 8, 7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
	};

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	lx_pack_tensor(&pk, LX_I32, 1, shape, v);
	CHECK(sb.size == sizeof want && memcmp(sb.data, want, sizeof want) == 0);
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	halves();
	fields();
	wire();
	return check_done("test_core");
}
