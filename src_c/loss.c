/* loss.c -- softmax and the output losses with their gradients, from logits.
 *
 * Bodies in loss_impl.h, included once per dtype (FNN_REAL, FNN_(name), FNN_M(fn) as in
 * activations.c).  These run single-threaded: the output layer is small, and one pass over the
 * rows in order gives a loss that is bit-identical whatever the thread count.
 */
#include <math.h>
#include "fastnn.h"

#define FNN_TEMPLATE "loss_impl.h"
#include "instantiate.h"
