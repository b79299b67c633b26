/* activations.c -- elementwise activations and their derivatives (one switch over fnn_act).
 *
 * The bodies live in activations_impl.h, included once per dtype: FNN_REAL is the element type,
 * FNN_(name) adds the dtype letter to a kernel name, FNN_M(fn) names the math function of the dtype
 * (expf or exp).
 */
#include <math.h>
#include "fastnn.h"

#define FNN_TEMPLATE "activations_impl.h"
#include "instantiate.h"
