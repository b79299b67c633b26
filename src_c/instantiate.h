/* instantiate.h -- private: compile a template body once per dtype.
 *
 * Define FNN_TEMPLATE as the body's file name ("x_impl.h") and include this file.  The body is
 * compiled twice, with
 *   FNN_REAL     the element type: float, then double;
 *   FNN_(name)   the kernel name with its dtype letter: fnn_s##name, then fnn_d##name;
 *   FNN_M(fn)    the math function of the dtype: fn##f (expf), then fn (exp).
 * No include guard on purpose: each .c file includes it once per template.
 */
#define FNN_REAL float
#define FNN_(name) fnn_s##name
#define FNN_M(fn) fn##f
#include FNN_TEMPLATE
#undef FNN_REAL
#undef FNN_
#undef FNN_M

#define FNN_REAL double
#define FNN_(name) fnn_d##name
#define FNN_M(fn) fn
#include FNN_TEMPLATE
#undef FNN_REAL
#undef FNN_
#undef FNN_M

#undef FNN_TEMPLATE
