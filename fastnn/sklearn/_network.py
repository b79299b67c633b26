"""The bridge between scikit-learn's view of a network and fastnn's compiled one.

Design: scikit-learn describes a network by ``coefs_`` and ``intercepts_``; fastnn keeps every
weight of an :class:`fastnn.MLP` in one flat buffer and computes loss and gradients over a batch
in one compiled call.  :class:`Network` wraps such an MLP: ``coefs_``/``intercepts_`` are views
into its buffer (``load`` copies arrays set by hand into it), and ``batch_loss_grad``/
``objective`` return the loss and flat gradient on scikit-learn's scale:

* loss per batch of m rows with sample weights s (all 1 by default)::

      sum_i s_i loss_i / sum_i s_i  +  alpha / (2 sum_i s_i) * sum_layers ||W||^2

  with ``loss_i`` the cross-entropy (softmax), the binary cross-entropy summed over the outputs
  (logistic), half the squared error averaged over the outputs (identity), or half the Poisson
  deviance summed over the outputs (exp);
* gradient ``(sum_i s_i delta_i a_i^T + alpha W) / sum_i s_i`` with ``delta = output - y``: for
  several identity outputs this is the gradient of the *sum* over the outputs, as scikit-learn
  computes it, while its reported loss averages them.

fastnn's kernel averages over rows (softmax) or over all elements (sigmoid, linear) and has no
per-row weight, so: the gradient is rescaled by a constant per output kind; a batch whose rows
share one weight is one compiled call; rows of different weights are grouped by weight, one call
per group, and the groups combined with their weights (exact for any weights; slower when a batch
holds many distinct weights).  The Poisson loss runs on the linear output through its gradient:
a forward pass gives ``z``, then the squared loss towards ``z - (exp(z) - y)`` has exactly the
gradient ``exp(z) - y`` of the Poisson deviance.

Sparse inputs stay sparse: each batch (or chunk of rows) is densified on its own.
"""
import numpy as np
import scipy.sparse as sp
from scipy.special import xlogy

from .. import _core
from .._threads import get_num_threads
from ..model import MLP, Dense
from ._params import HIDDEN_ACTIVATIONS

# scikit-learn's out_activation_ -> fastnn's output activation
OUTPUT_ACTIVATIONS = {"softmax": "softmax", "logistic": "sigmoid", "identity": "linear",
                      "exp": "linear"}

# Rows per compiled call when a whole data set is evaluated (L-BFGS, predictions).
CHUNK_ROWS = 4096


def glorot_uniform(random_state, layer_units, activation, dtype):
    """scikit-learn's initial ``(coefs, intercepts)``, drawn as it draws them: for each layer
    in turn ``W ~ U(-b, b)`` of shape (fan_in, fan_out), then ``b ~ U(-b, b)`` of shape
    (fan_out,), ``b = sqrt(6 / (fan_in + fan_out))`` (2 instead of 6 for logistic hidden
    units), in float64 from ``random_state`` and then cast to ``dtype``."""
    factor = 2.0 if HIDDEN_ACTIVATIONS[activation] == "sigmoid" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        coefs.append(random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
        intercepts.append(random_state.uniform(-bound, bound, fan_out).astype(dtype))
    return coefs, intercepts


def is_sparse(X):
    return sp.issparse(X)


class Network:
    """An :class:`fastnn.MLP` with scikit-learn's loss conventions (see the module docstring).

    Parameters
    ----------
    model : fastnn.MLP
    out_activation : {"softmax", "logistic", "identity", "exp"}
        scikit-learn's name of the output; "exp" is a linear fastnn output whose predictions
        are ``exp(z)`` (Poisson loss).
    dropout_seed : int
        Seeds the dropout masks (with a per-pass counter).
    """

    def __init__(self, model, out_activation, dropout_seed=0):
        self.model, self.out_activation = model, out_activation
        self.dropout_seed = dropout_seed
        self.dtype = model.dtype
        self.n_threads = get_num_threads()
        # fastnn's kernel averages its loss over the rows (softmax) or over all the elements
        # (sigmoid, linear) of k outputs: scikit-learn's loss is loss_scale times it, and
        # scikit-learn's gradient grad_scale times fastnn's.  (exp: the loss is computed here.)
        k = float(model.n_outputs)
        self.loss_scale = {"softmax": 1.0, "logistic": k, "identity": 0.5, "exp": None}[
            out_activation]
        self.grad_scale = {"softmax": 1.0, "logistic": k, "identity": k / 2, "exp": k / 2}[
            out_activation]
        layout = model._param_layout
        self._w_spans = [(layout[f"{i}.W"][0], int(np.prod(layout[f"{i}.W"][1])))
                         for i in range(len(model.layers))]
        self._acc = None
        self._xbuf = None

    @classmethod
    def build(cls, layer_units, activation, out_activation, dtype, keep_prob=1.0,
              batch_norm=False, dropout_seed=0):
        """A new network of ``layer_units`` (inputs, hidden..., outputs); weights are zero until
        :meth:`load`."""
        layers = [Dense(units, HIDDEN_ACTIVATIONS[activation], init="zeros",
                        keep_prob=keep_prob, batch_norm=batch_norm)
                  for units in layer_units[1:-1]]
        layers.append(Dense(layer_units[-1], OUTPUT_ACTIVATIONS[out_activation], init="zeros"))
        return cls(MLP(layer_units[0], layers, dtype=dtype), out_activation, dropout_seed)

    def matches(self, layer_units, activation, out_activation, dtype, keep_prob, batch_norm):
        """True when the network has this architecture and dtype."""
        model = self.model
        hidden = model.layers[:-1]
        return (self.layer_units == list(layer_units) and model.dtype == np.dtype(dtype)
                and self.out_activation == out_activation
                and all(l.activation == HIDDEN_ACTIVATIONS[activation] and
                        l.keep_prob == keep_prob and l.batch_norm == batch_norm for l in hidden))

    @property
    def layer_units(self):
        return [self.model.n_inputs] + [layer.units for layer in self.model.layers]

    @property
    def params(self):
        return self.model._params

    # ---- coefs_ and intercepts_ ----------------------------------------------------------------

    def _param(self, key):
        off, shape = self.model._param_layout[key]
        return self.model._params[off:off + int(np.prod(shape))].reshape(shape)

    def views(self):
        """``(coefs, intercepts)``: lists of views into the parameter buffer (a batch-norm
        layer's intercept is its shift beta)."""
        n = len(self.model.layers)
        coefs = [self._param(f"{i}.W") for i in range(n)]
        intercepts = [self._param(f"{i}.beta" if self.model.layers[i].batch_norm else f"{i}.b")
                      for i in range(n)]
        return coefs, intercepts

    def load(self, coefs, intercepts):
        """Copy ``coefs``/``intercepts`` (as ``coefs_``/``intercepts_``) into the parameter
        buffer, skipping arrays that are already its views."""
        own_coefs, own_intercepts = self.views()
        for name, given, own in (("coefs_", coefs, own_coefs),
                                 ("intercepts_", intercepts, own_intercepts)):
            if len(given) != len(own):
                raise ValueError(f"{name} must hold {len(own)} arrays (one per layer), got "
                                 f"{len(given)}")
            for i, (value, view) in enumerate(zip(given, own)):
                if _same_memory(value, view):
                    continue
                value = np.asarray(value)
                if value.shape != view.shape:
                    raise ValueError(f"{name}[{i}] must have shape {view.shape} to match the "
                                     f"network, got {value.shape}")
                view[...] = value

    # ---- data ------------------------------------------------------------------------------------

    def prepare_X(self, X):
        """X as the batches read it: C-contiguous in the network's dtype, or CSR."""
        if is_sparse(X):
            return sp.csr_matrix(X, dtype=self.dtype)
        return np.ascontiguousarray(X, dtype=self.dtype)

    def prepare_targets(self, Y):
        """Targets (n_samples, n_outputs) as the kernel takes them: class indices (int32) for
        softmax, a C-contiguous float array otherwise."""
        if self.out_activation == "softmax":
            return np.ascontiguousarray(np.argmax(Y, axis=1), dtype=np.int32)
        return np.ascontiguousarray(Y, dtype=self.dtype)

    def rows(self, X, idx):
        """Dense C-contiguous rows ``idx`` (a slice or indices) of prepared X."""
        if is_sparse(X):
            return np.ascontiguousarray(X[idx].toarray())
        if isinstance(idx, slice):
            return X[idx]
        m = len(idx)
        if self._xbuf is None or self._xbuf.shape[0] < m or self._xbuf.shape[1] != X.shape[1]:
            self._xbuf = np.empty((m, X.shape[1]), dtype=self.dtype)
        out = self._xbuf[:m]
        _core.gather_rows(X, np.asarray(idx, dtype=np.int64), out)
        return out

    # ---- loss and gradient -------------------------------------------------------------------

    def _net(self, rows):
        return self.model._net(rows, self.n_threads)

    def _pass(self, net, Xp, Tp, training, step, l2_coef):
        """One compiled forward/backward on rows Xp: returns (mean data loss on scikit-learn's
        scale, sum of ||W||^2 when l2_coef != 0); fastnn's gradient (plus l2_coef W) lands in
        the model's gradient buffer."""
        n_threads = self.n_threads
        if self.out_activation == "exp":
            Z = np.empty((Xp.shape[0], self.model.n_outputs), dtype=self.dtype)
            net.forward(Xp, Z, training, self.dropout_seed, step, n_threads)
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                P = np.exp(Z)
                loss = float(np.sum(xlogy(Tp, Tp / P) - Tp + P)) / Xp.shape[0]
                Yp = np.ascontiguousarray(Z - (P - Tp), dtype=self.dtype)
            _, sum_w2, _ = net.loss_grad(Xp, None, Yp, training, self.dropout_seed, step,
                                         l2_coef, n_threads)
            return loss, sum_w2
        labels, Y = (Tp, None) if self.out_activation == "softmax" else (None, Tp)
        loss, sum_w2, _ = net.loss_grad(Xp, labels, Y, training, self.dropout_seed, step,
                                        l2_coef, n_threads)
        return self.loss_scale * loss, sum_w2

    def batch_loss_grad(self, Xb, Tb, swb, alpha, step):
        """Training-mode loss and flat gradient on one dense batch (``swb``: its sample weights
        or None).  Returns ``(loss, grads)``, or ``(None, None)`` when every weight is 0."""
        m = Xb.shape[0]
        net = self._net(m)
        if swb is None or swb.min() == swb.max():
            w = 1.0 if swb is None else float(swb[0])
            if w == 0.0:
                return None, None
            loss, sum_w2 = self._pass(net, Xb, Tb, True, step,
                                      alpha / (w * m * self.grad_scale))
            grads = self.model._grads
            if self.grad_scale != 1.0:
                grads *= self.grad_scale
            return loss + alpha / (2.0 * w * m) * sum_w2, grads
        groups = [(w, np.flatnonzero(swb == w)) for w in np.unique(swb) if w != 0]
        parts = ((w, np.ascontiguousarray(Xb[rows]), Tb[rows]) for w, rows in groups)
        return self._combine(net, parts, float(swb.sum()), alpha, True, step)

    def objective(self, X, T, sw, alpha):
        """Inference-mode loss and flat gradient over all of prepared X (chunks of rows, grouped
        by sample weight)."""
        n = X.shape[0]
        net = self._net(min(n, CHUNK_ROWS))
        if sw is None:
            parts = ((1.0, self.rows(X, slice(s, s + CHUNK_ROWS)), T[s:s + CHUNK_ROWS])
                     for s in range(0, n, CHUNK_ROWS))
            return self._combine(net, parts, float(n), alpha, False, 0)

        def weighted_parts():
            for w in np.unique(sw[sw > 0]):
                rows = np.flatnonzero(sw == w)
                for s in range(0, len(rows), CHUNK_ROWS):
                    chunk = rows[s:s + CHUNK_ROWS]
                    yield w, np.ascontiguousarray(self.rows(X, chunk)), T[chunk]
        return self._combine(net, weighted_parts(), float(sw.sum()), alpha, False, 0)

    def _combine(self, net, parts, sw_sum, alpha, training, step):
        """Sum of weight * rows * (loss, gradient) over parts (weight, X rows, targets), divided
        by the total weight, plus the L2 term over that total."""
        if self._acc is None:
            self._acc = np.empty_like(self.params)
        acc = self._acc
        acc.fill(0.0)
        total = 0.0
        for w, Xp, Tp in parts:
            loss, _ = self._pass(net, Xp, Tp, training, step, 0.0)
            scale = float(w) * Xp.shape[0]
            acc += scale * self.model._grads
            total += scale * loss
        acc *= self.grad_scale / sw_sum
        sum_w2 = 0.0
        for off, size in self._w_spans:
            W = self.params[off:off + size]
            acc[off:off + size] += (alpha / sw_sum) * W
            sum_w2 += float(np.dot(W, W))
        return total / sw_sum + alpha / (2.0 * sw_sum) * sum_w2, acc

    # ---- predictions -----------------------------------------------------------------------

    def forward(self, X):
        """Inference output on validated X (dense or sparse): probabilities for softmax and
        logistic outputs, values for identity, ``exp(z)`` for exp; the network's dtype.  A
        diverged network gives NaN here, as scikit-learn's does (its scores then say so)."""
        X = self.prepare_X(X)
        if is_sparse(X):
            out = np.empty((X.shape[0], self.model.n_outputs), dtype=self.dtype)
            for s in range(0, X.shape[0], CHUNK_ROWS):
                out[s:s + CHUNK_ROWS] = self.model._infer(self.rows(X, slice(s, s + CHUNK_ROWS)))
        else:
            out = self.model._infer(self.model._prepare_X(X))
        if self.out_activation == "exp":
            with np.errstate(over="ignore"):
                np.exp(out, out=out)
        return out


def _same_memory(value, view):
    """True when ``value`` is ``view`` or another array over exactly the same memory."""
    return (isinstance(value, np.ndarray) and value.dtype == view.dtype
            and value.shape == view.shape and value.strides == view.strides
            and value.__array_interface__["data"][0] == view.__array_interface__["data"][0])
