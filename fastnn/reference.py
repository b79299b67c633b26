"""NumPy reference implementation of fastnn's kernels: the correctness oracle.

Design: one short, obvious function per C kernel of ``src_c/fastnn.h``, with the kernel's
formula in its docstring; then a whole-network oracle (:func:`mlp_forward`,
:func:`mlp_loss_and_grads`) written from these pieces.  Each function computes in the dtype of
its inputs (pass float64 to check the compiled kernels to ~1e-12) and returns new arrays; none
writes into its arguments.  Speed is not a goal here: clarity is.  This module is also the
baseline of the benchmarks.

Shapes follow the course and the C contract: ``X``/``A_prev`` ``(m, n_in)``, ``W``
``(n_in, n_out)``, ``b`` ``(n_out,)``, ``Z``/``A``/``dZ``/``dA`` ``(m, n_out)``, row-major.
"""

import numpy as np

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "LOSS_NAMES",
    "ACTIVATIONS",
    "LOSSES",
    "LEAKY_SLOPE",
    "BN_EPS",
    "act_forward",
    "act_backward",
    "softmax",
    "loss_grad",
    "dense_forward",
    "dense_backward",
    "gather_rows",
    "philox4x32",
    "dropout_mask",
    "mlp_dropout_masks",
    "sgd_step",
    "momentum_step",
    "rmsprop_step",
    "adam_step",
    "adamw_step",
    "OPTIMIZERS",
    "optim_step",
    "batchnorm_forward_train",
    "batchnorm_forward_infer",
    "batchnorm_backward",
    "mlp_forward",
    "mlp_loss_and_grads",
]

LEAKY_SLOPE = 0.01
"""Slope of ``leaky_relu`` for negative inputs (``FNN_LEAKY_SLOPE``)."""

BN_EPS = 1e-5
"""Batch-norm epsilon (as PyTorch's BatchNorm1d)."""


# ---- activations (activations.c) --------------------------------------------------------------
# Forward from Z; derivative written from the forward OUTPUT a = g(z), as the C kernels do.

def _sigmoid(z):
    with np.errstate(over="ignore"):        # exp(-z) = inf for z << 0 gives the right 0
        return 1 / (1 + np.exp(-z))


ACTIVATION_FUNCTIONS = {
    "linear": (lambda z: z.copy(), lambda a: np.ones_like(a)),
    "relu": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(a.dtype)),
    "leaky_relu": (lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
                   lambda a: np.where(a > 0, 1, LEAKY_SLOPE).astype(a.dtype)),
    "tanh": (np.tanh, lambda a: 1 - a * a),
    "sigmoid": (_sigmoid, lambda a: a * (1 - a)),
}
"""name -> (g(z), g'(z) written from a = g(z)); softmax is row-wise and handled apart."""
ACTIVATIONS = ACTIVATION_FUNCTIONS  # the old name


def _check_activation(name, allow_softmax):
    names = list(ACTIVATION_FUNCTIONS) + (["softmax"] if allow_softmax else [])
    if name not in names:
        raise ValueError(f"activation must be one of {names}, got {name!r}")


def act_forward(name, z):
    """Apply an activation elementwise: ``a = g(z)`` (``fnn_act_forward``).

    ``linear: z``; ``relu: max(z, 0)``; ``leaky_relu: z if z > 0 else 0.01 z``;
    ``tanh: tanh(z)``; ``sigmoid: 1/(1 + exp(-z))``; ``softmax``: row-wise, see :func:`softmax`.

    Parameters
    ----------
    name : {"linear", "relu", "leaky_relu", "tanh", "sigmoid", "softmax"}
    z : ndarray
        Any shape (2-D ``(m, n)`` for softmax).

    Returns
    -------
    ndarray, same shape and dtype as ``z``.
    """
    _check_activation(name, allow_softmax=True)
    z = np.asarray(z)
    if name == "softmax":
        return softmax(z)
    return ACTIVATION_FUNCTIONS[name][0](z)


def act_backward(name, a, dA):
    """Chain an activation's derivative, written from its output: ``dZ = dA * g'(a)``.

    (``fnn_act_backward``.)  With ``a = g(z)``: ``relu: [a > 0]``;
    ``leaky_relu: 1 if a > 0 else 0.01``; ``tanh: 1 - a²``; ``sigmoid: a (1 - a)``;
    ``linear: 1``.  Not for softmax: its gradient comes with the loss (:func:`loss_grad`).

    Parameters
    ----------
    name : {"linear", "relu", "leaky_relu", "tanh", "sigmoid"}
    a : ndarray
        The forward output ``g(z)``.
    dA : ndarray, same shape as ``a``
        Gradient of the loss with respect to ``a``.

    Returns
    -------
    dZ : ndarray, same shape and dtype as ``a``.
    """
    if name == "softmax":
        raise ValueError("act_backward does not take 'softmax': the softmax gradient comes "
                         "with the loss, see loss_grad")
    _check_activation(name, allow_softmax=False)
    a = np.asarray(a)
    dA = np.asarray(dA)
    if a.shape != dA.shape:
        raise ValueError(f"a and dA must have the same shape, got {a.shape} and {dA.shape}")
    return dA * ACTIVATION_FUNCTIONS[name][1](a)


# ---- output layer (loss.c) --------------------------------------------------------------------

def softmax(z):
    """Row-wise softmax, stable (``fnn_softmax_rows``).

    ``P[i, j] = exp(Z[i, j] - max_k Z[i, k]) / Σ_j exp(Z[i, j] - max_k Z[i, k])``

    Parameters
    ----------
    z : ndarray of shape (m, n)

    Returns
    -------
    P : ndarray of shape (m, n), rows summing to 1.
    """
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"z must be 2-D (m, n), got shape {z.shape}")
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _logsumexp_rows(z):
    zmax = z.max(axis=1, keepdims=True)
    return (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)))[:, 0]


LOSS_NAMES = ("xent", "bce", "mse")
"""Loss names, in ``fnn_loss`` order; chosen by the output activation softmax/sigmoid/linear."""
LOSSES = LOSS_NAMES  # the old name

_OUTPUT_LOSS = {"softmax": "xent", "sigmoid": "bce", "linear": "mse"}


def loss_grad(loss, Z, y, scale=1.0):
    """Summed loss over a batch and its scaled gradient with respect to the logits.

    (``fnn_loss_grad``.)  For logits ``Z`` of shape ``(m, n)``:

    * ``"xent"`` (softmax): ``loss_i = logsumexp(Z[i, :]) - Z[i, y_i]``,
      ``dZ = scale · (softmax(Z) - onehot(y))``; ``y`` holds ``m`` class indices in ``[0, n)``.
    * ``"bce"`` (sigmoid), per element: ``max(z, 0) - z·y + log1p(exp(-|z|))``
      (``= -[y log σ(z) + (1-y) log(1-σ(z))]``), ``dZ = scale · (σ(z) - y)``.
    * ``"mse"`` (linear), per element: ``(z - y)²``, ``dZ = scale · 2 (z - y)``.

    The mean losses are ``sum/m`` (xent) and ``sum/(m·n)`` (bce, mse): pass
    ``scale = 1/m`` or ``1/(m·n)`` to get their gradients.

    Parameters
    ----------
    loss : {"xent", "bce", "mse"}
    Z : ndarray of shape (m, n)
    y : ndarray
        ``(m,)`` integer labels for xent; ``(m, n)`` targets (or ``(m,)`` when ``n == 1``) for
        bce and mse.
    scale : float, default 1.0

    Returns
    -------
    sum_loss : float
        Summed over all rows (and, for bce/mse, columns), accumulated in float64.
    dZ : ndarray of shape (m, n), dtype of ``Z``.
    """
    if loss not in LOSS_NAMES:
        raise ValueError(f"loss must be one of {list(LOSS_NAMES)}, got {loss!r}")
    Z = np.asarray(Z)
    if Z.ndim != 2:
        raise ValueError(f"Z must be 2-D (m, n), got shape {Z.shape}")
    m, n = Z.shape
    if loss == "xent":
        labels = np.asarray(y)
        if labels.shape != (m,):
            raise ValueError(f"y must hold {m} class indices, got shape {labels.shape}")
        if labels.dtype.kind not in "iu" or labels.size and (labels.min() < 0
                                                             or labels.max() >= n):
            raise ValueError(f"y must hold integer class indices in [0, {n}), got "
                             f"{labels.dtype} values")
        rows = np.arange(m)
        per_example = _logsumexp_rows(Z) - Z[rows, labels]
        dZ = softmax(Z)
        dZ[rows, labels] -= 1
        return float(np.sum(per_example, dtype=np.float64)), scale * dZ
    Y = np.asarray(y, dtype=Z.dtype)
    if Y.shape != Z.shape:
        if Y.shape == (m,) and n == 1:
            Y = Y.reshape(m, 1)
        else:
            raise ValueError(f"y must have the shape of Z {Z.shape}, got {Y.shape}")
    if loss == "bce":
        per_element = np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
        dZ = _sigmoid(Z) - Y
    else:
        per_element = (Z - Y) ** 2
        dZ = 2 * (Z - Y)
    return float(np.sum(per_element, dtype=np.float64)), scale * dZ


# ---- dense layer (net.c) ----------------------------------------------------------------------

def _check_keep_prob(keep_prob):
    if not 0 < keep_prob <= 1:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob!r}")


def _apply_dropout(A, mask, keep_prob):
    # fnn_dropout_apply: x = mask ? x * inv_keep : 0, inv_keep in the dtype of x.
    if mask is None:
        return A
    mask = np.asarray(mask)
    if mask.shape != A.shape:
        raise ValueError(f"mask must have the shape of the activations {A.shape}, got "
                         f"{mask.shape}")
    return np.where(mask != 0, A * A.dtype.type(1.0 / keep_prob), A.dtype.type(0))


def dense_forward(X, W, b, activation, mask=None, keep_prob=1.0):
    """Forward of one dense layer: ``A = g(X @ W + b) · mask / keep_prob``.

    Parameters
    ----------
    X : ndarray of shape (m, n_in)
    W : ndarray of shape (n_in, n_out)
    b : ndarray of shape (n_out,)
    activation : str or None
        A hidden activation (see :func:`act_forward`), ``"softmax"``/``"sigmoid"`` for output
        probabilities, or ``None`` to return the logits ``Z = X @ W + b`` (the output layer of
        the C network keeps its logits).
    mask : ndarray of shape (m, n_out) or None, default None
        Dropout mask (1 kept, 0 dropped); ``None``: no dropout.
    keep_prob : float, default 1.0
        Keep probability the kept activations are divided by (inverted dropout).

    Returns
    -------
    A : ndarray of shape (m, n_out)
    """
    _check_keep_prob(keep_prob)
    Z = np.asarray(X) @ np.asarray(W) + np.asarray(b)
    if activation is None:
        if mask is not None:
            raise ValueError("mask must be None when activation is None (no dropout on logits)")
        return Z
    return _apply_dropout(act_forward(activation, Z), mask, keep_prob)


def dense_backward(A_prev, W, A, dA, activation, mask=None, keep_prob=1.0, l2_scale=0.0):
    """Backward of one dense layer.

    With ``a`` the activation before dropout (``a = A · keep_prob`` where kept)::

        dZ      = dA · mask / keep_prob · g'(a)
        dW      = A_prevᵀ dZ + l2_scale · W
        db      = Σ_rows dZ
        dA_prev = dZ Wᵀ

    Parameters
    ----------
    A_prev : ndarray of shape (m, n_in)
        The layer's input.
    W : ndarray of shape (n_in, n_out)
    A : ndarray of shape (m, n_out)
        The layer's output as :func:`dense_forward` returned it (after dropout).
    dA : ndarray of shape (m, n_out)
        Gradient with respect to ``A``; for ``activation=None`` it is ``dZ`` itself (e.g. from
        :func:`loss_grad`).
    activation : str or None
        The hidden activation, or ``None``/``"linear"`` for an identity derivative.
    mask : ndarray of shape (m, n_out) or None, default None
    keep_prob : float, default 1.0
    l2_scale : float, default 0.0
        ``λ/m`` of the course's L2 term (``λ/N`` in mini-batch training).

    Returns
    -------
    dW : ndarray of shape (n_in, n_out)
    db : ndarray of shape (n_out,)
    dA_prev : ndarray of shape (m, n_in)
    """
    _check_keep_prob(keep_prob)
    A = np.asarray(A)
    dA = np.asarray(dA)
    if mask is not None:
        a = A * A.dtype.type(keep_prob)     # undo the 1/keep_prob scaling on kept entries
        dA = _apply_dropout(dA, mask, keep_prob)
    else:
        a = A
    dZ = dA if activation is None else act_backward(activation, a, dA)
    A_prev = np.asarray(A_prev)
    W = np.asarray(W)
    dW = A_prev.T @ dZ + l2_scale * W
    db = dZ.sum(axis=0)
    dA_prev = dZ @ W.T
    return dW, db, dA_prev


# ---- mini-batch gather (gather.c) -------------------------------------------------------------

def gather_rows(X, idx):
    """Rows of ``X`` picked by ``idx``: ``out[r] = X[idx[r]]``.

    (``fnn_gather_rows``; ``fnn_igather`` for 1-D labels.)

    Parameters
    ----------
    X : ndarray of shape (n_samples, n) or (n_samples,)
    idx : ndarray of shape (m,), integers in ``[0, n_samples)``

    Returns
    -------
    ndarray of shape (m, n) or (m,), C-contiguous copy.
    """
    X = np.asarray(X)
    idx = np.asarray(idx)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise ValueError(f"idx must be a 1-D integer array, got {idx.dtype} of shape "
                         f"{idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= X.shape[0]):
        raise ValueError(f"idx must be in [0, {X.shape[0]}), got values in "
                         f"[{idx.min()}, {idx.max()}]")
    return np.ascontiguousarray(X[idx])


# ---- dropout (dropout.c): re-exported from the Philox twin ------------------------------------

def philox4x32(ctr, key):
    """Philox4x32-10 block (Salmon et al., SC11); see ``fastnn._philox_ref.philox4x32``."""
    from fastnn._philox_ref import philox4x32 as _philox4x32
    return _philox4x32(ctr, key)


def dropout_mask(seed, step, layer, e0, count, keep_prob):
    """Dropout mask of ``count`` elements from element ``e0`` (``fnn_dropout_mask``).

    Element ``e`` is kept iff word ``e % 4`` of ``philox(ctr={e//4 lo, e//4 hi, layer, step lo},
    key={seed lo, seed hi})`` is below ``floor(keep_prob · 2³²)``.  Delegates to
    ``fastnn._philox_ref.dropout_mask``.

    Returns
    -------
    mask : ndarray of shape (count,), uint8 (1 kept, 0 dropped)
    """
    from fastnn._philox_ref import dropout_mask as _dropout_mask
    return _dropout_mask(seed, step, layer, e0, count, keep_prob)


def mlp_dropout_masks(layers, m, seed, step=0):
    """Masks of one training step for every dropout layer of a network.

    Layer ``i``'s mask is ``dropout_mask(seed, step, i, 0, m·units_i, keep_prob_i)`` reshaped to
    ``(m, units_i)`` (element ``e`` is the row-major index in the layer's activations).

    Parameters
    ----------
    layers : list of dict
        As in :func:`mlp_forward`.
    m : int
        Rows in the batch.
    seed, step : int

    Returns
    -------
    dict of int -> ndarray of shape (m, units), uint8
        Only layers with ``keep_prob < 1``.
    """
    masks = {}
    for i, layer in enumerate(layers):
        keep_prob = layer.get("keep_prob", 1.0)
        if keep_prob < 1:
            units = layer["units"]
            masks[i] = dropout_mask(seed, step, i, 0, m * units, keep_prob).reshape(m, units)
    return masks


# ---- optimizers (optim.c) ---------------------------------------------------------------------
# Each takes (p, g, v, s, t) and its own hyperparameters, and returns new arrays (p, v, s);
# state it does not use is returned as given (may be None).  optim_step mirrors fnn_optim_step.

def _check_t(t):
    if int(t) != t or t < 1:
        raise ValueError(f"t must be an integer step >= 1, got {t!r}")


def sgd_step(p, g, v=None, s=None, t=1, *, lr):
    """Plain gradient descent: ``p -= lr · g``.

    Parameters
    ----------
    p, g : ndarray of the same shape
        Parameters and their gradient.
    v, s : ndarray or None
        Unused state, returned as given.
    t : int, default 1
    lr : float

    Returns
    -------
    p, v, s : new arrays (``v``, ``s`` unchanged).
    """
    return p - lr * g, v, s


def momentum_step(p, g, v, s=None, t=1, *, lr, beta1=0.9):
    """Gradient descent with momentum (the course's form).

    ``v = β1 v + (1 - β1) g;  p -= lr · v``  (v starts at 0)

    Returns
    -------
    p, v, s : new ``p`` and ``v``; ``s`` unchanged.
    """
    v = beta1 * v + (1 - beta1) * g
    return p - lr * v, v, s


def rmsprop_step(p, g, v, s, t=1, *, lr, beta2=0.999, eps=1e-8):
    """RMSprop with eps outside the root (PyTorch, the Adam paper; the course puts it inside).

    ``s = β2 s + (1 - β2) g²;  p -= lr · g / (sqrt(s) + eps)``  (s starts at 0)

    Returns
    -------
    p, v, s : new ``p`` and ``s``; ``v`` unchanged.
    """
    s = beta2 * s + (1 - beta2) * g * g
    return p - lr * g / (np.sqrt(s) + eps), v, s


def adam_step(p, g, v, s, t, *, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (Kingma & Ba, 2015) in ``torch.optim.Adam``'s order of operations.

    ::

        v = β1 v + (1 - β1) g
        s = β2 s + (1 - β2) g²
        step_size = lr / (1 - β1^t)
        denom = sqrt(s) / sqrt(1 - β2^t) + eps
        p -= step_size · v / denom

    which equals ``p -= lr · v̂ / (sqrt(ŝ) + eps)`` with ``v̂ = v/(1-β1^t)``,
    ``ŝ = s/(1-β2^t)``.  Bias corrections are computed in float64.

    Parameters
    ----------
    p, g, v, s : ndarray of the same shape
    t : int
        Step number, >= 1 (after increment).
    lr, beta1, beta2, eps : float

    Returns
    -------
    p, v, s : new arrays.
    """
    _check_t(t)
    v = beta1 * v + (1 - beta1) * g
    s = beta2 * s + (1 - beta2) * g * g
    step_size = lr / (1.0 - beta1 ** t)
    denom = np.sqrt(s) / np.sqrt(1.0 - beta2 ** t) + eps
    return p - step_size * (v / denom), v, s


def adamw_step(p, g, v, s, t, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    """AdamW (Loshchilov & Hutter, 2019) as ``torch.optim.AdamW``: decoupled weight decay.

    ``p *= 1 - lr · weight_decay``, then :func:`adam_step`.

    Returns
    -------
    p, v, s : new arrays.
    """
    return adam_step(p * (1 - lr * weight_decay), g, v, s, t, lr=lr, beta1=beta1, beta2=beta2,
                     eps=eps)


OPTIMIZERS = {
    "sgd": (sgd_step, ()),
    "momentum": (momentum_step, ("beta1",)),
    "rmsprop": (rmsprop_step, ("beta2", "eps")),
    "adam": (adam_step, ("beta1", "beta2", "eps")),
    "adamw": (adamw_step, ("beta1", "beta2", "eps", "weight_decay")),
}
"""name -> (step function, the hyperparameters it takes besides lr), in ``fnn_optim`` order."""


def optim_step(kind, p, g, v, s, t, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One optimizer step chosen by name, with ``fnn_optim_params``'s fields (``fnn_optim_step``).

    Parameters
    ----------
    kind : {"sgd", "momentum", "rmsprop", "adam", "adamw"}
    p, g : ndarray of the same shape
    v, s : ndarray or None
        First and second moment state (``None`` where the optimizer has none).
    t : int
        Step number, >= 1 (after increment).
    lr, beta1, beta2, eps, weight_decay : float
        Each optimizer reads only its own (``momentum`` uses ``beta1`` as the course's β).

    Returns
    -------
    p, v, s : new arrays.
    """
    if kind not in OPTIMIZERS:
        raise ValueError(f"kind must be one of {list(OPTIMIZERS)}, got {kind!r}")
    _check_t(t)
    step, names = OPTIMIZERS[kind]
    given = {"beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay}
    return step(p, g, v, s, t, lr=lr, **{name: given[name] for name in names})


# ---- batch norm -------------------------------------------------------------------------------

def batchnorm_forward_train(Z, gamma, beta, running_mean, running_var, momentum=0.9,
                            eps=BN_EPS):
    """Batch norm over a training batch, and the updated running statistics.

    ::

        mu = mean_rows(Z);  var = mean_rows((Z - mu)²)          (biased)
        Zhat = (Z - mu) / sqrt(var + eps);  Zt = gamma · Zhat + beta
        running_mean = momentum · running_mean + (1 - momentum) · mu
        running_var  = momentum · running_var  + (1 - momentum) · var · m/(m - 1)   (unbiased)

    ``momentum`` is fastnn's β (``bn_momentum=0.9``); PyTorch's ``momentum`` is ``1 - β``.

    Parameters
    ----------
    Z : ndarray of shape (m, n), m >= 2
    gamma, beta, running_mean, running_var : ndarray of shape (n,)
    momentum : float, default 0.9
    eps : float, default 1e-5

    Returns
    -------
    Zt, Zhat : ndarray of shape (m, n)
    mu, var : ndarray of shape (n,)
        Batch mean and biased batch variance.
    new_running_mean, new_running_var : ndarray of shape (n,)
    """
    Z = np.asarray(Z)
    m = Z.shape[0]
    if Z.ndim != 2 or m < 2:
        raise ValueError(f"Z must be 2-D with at least 2 rows for batch statistics, got shape "
                         f"{Z.shape}")
    mu = Z.mean(axis=0)
    var = ((Z - mu) ** 2).mean(axis=0)       # two passes: never E[z²] - E[z]²
    Zhat = (Z - mu) / np.sqrt(var + eps)
    Zt = gamma * Zhat + beta
    new_running_mean = momentum * running_mean + (1 - momentum) * mu
    new_running_var = momentum * running_var + (1 - momentum) * (var * (m / (m - 1)))
    return Zt, Zhat, mu, var, new_running_mean, new_running_var


def batchnorm_forward_infer(Z, gamma, beta, running_mean, running_var, eps=BN_EPS):
    """Batch norm at inference, with the running statistics.

    ``Zt = gamma · (Z - running_mean) / sqrt(running_var + eps) + beta``

    Parameters
    ----------
    Z : ndarray of shape (m, n)
    gamma, beta, running_mean, running_var : ndarray of shape (n,)
    eps : float, default 1e-5

    Returns
    -------
    Zt : ndarray of shape (m, n)
    """
    return gamma * ((np.asarray(Z) - running_mean) / np.sqrt(running_var + eps)) + beta


def batchnorm_backward(dY, Zhat, gamma, var, eps=BN_EPS):
    """Backward of training-mode batch norm (gradient through the batch statistics).

    ::

        dbeta  = Σ_rows dY
        dgamma = Σ_rows dY · Zhat
        dZ     = gamma / sqrt(var + eps) / m · (m · dY - dbeta - Zhat · dgamma)

    Parameters
    ----------
    dY : ndarray of shape (m, n)
        Gradient with respect to ``Zt``.
    Zhat : ndarray of shape (m, n)
    gamma, var : ndarray of shape (n,)
        ``var`` is the biased batch variance from the forward pass.
    eps : float, default 1e-5

    Returns
    -------
    dZ : ndarray of shape (m, n)
    dgamma, dbeta : ndarray of shape (n,)
    """
    dY = np.asarray(dY)
    m = dY.shape[0]
    dbeta = dY.sum(axis=0)
    dgamma = (dY * Zhat).sum(axis=0)
    rstd = 1 / np.sqrt(var + eps)
    dZ = (gamma * rstd / m) * (m * dY - dbeta - Zhat * dgamma)
    return dZ, dgamma, dbeta


# ---- the whole network ------------------------------------------------------------------------

def _check_network(params, layers, X, masks):
    if not layers:
        raise ValueError("layers must hold at least one layer, got an empty list")
    out = layers[-1]["activation"]
    if out not in _OUTPUT_LOSS:
        raise ValueError(f"the output activation must be one of {list(_OUTPUT_LOSS)}, got "
                         f"{out!r}")
    if layers[-1].get("keep_prob", 1.0) != 1.0:
        raise ValueError("dropout is not allowed on the output layer, got keep_prob="
                         f"{layers[-1]['keep_prob']!r}")
    for layer in layers[:-1]:
        _check_activation(layer["activation"], allow_softmax=False)
        _check_keep_prob(layer.get("keep_prob", 1.0))
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (m, n_features), got shape {X.shape}")
    n_in = X.shape[1]
    for i, layer in enumerate(layers):
        names = (("W", "gamma", "beta", "running_mean", "running_var")
                 if layer.get("batch_norm", False) else ("W", "b"))
        missing = [f"{i}.{name}" for name in names if f"{i}.{name}" not in params]
        if missing:
            raise ValueError(f"params is missing {missing} for layer {i}")
        W = params[f"{i}.W"]
        if W.shape != (n_in, layer["units"]):
            raise ValueError(f"params['{i}.W'] must have shape {(n_in, layer['units'])}, got "
                             f"{W.shape}")
        n_in = layer["units"]
    masks = {} if masks is None else {i: mask for i, mask in masks.items() if mask is not None}
    for i, mask in masks.items():
        if not 0 <= i < len(layers) - 1 or layers[i].get("keep_prob", 1.0) == 1.0:
            raise ValueError(f"masks[{i}] given but layer {i} has no dropout")
        if np.shape(mask) != (X.shape[0], layers[i]["units"]):
            raise ValueError(f"masks[{i}] must have shape {(X.shape[0], layers[i]['units'])}, "
                             f"got {np.shape(mask)}")
    return X, masks


def _forward(params, layers, X, training, masks):
    """Forward pass keeping what backward needs; the last layer's entry holds its logits."""
    A = X
    caches = []
    for i, layer in enumerate(layers):
        W = params[f"{i}.W"]
        cache = {"A_prev": A}
        if layer.get("batch_norm", False):
            Z = A @ W
            gamma, beta = params[f"{i}.gamma"], params[f"{i}.beta"]
            rm, rv = params[f"{i}.running_mean"], params[f"{i}.running_var"]
            if training:
                Zt, Zhat, _, var, _, _ = batchnorm_forward_train(Z, gamma, beta, rm, rv)
            else:
                var = rv
                Zhat = (Z - rm) / np.sqrt(rv + BN_EPS)
                Zt = batchnorm_forward_infer(Z, gamma, beta, rm, rv)
            cache.update(Zhat=Zhat, var=var)
        else:
            Zt = A @ W + params[f"{i}.b"]
        if i == len(layers) - 1:
            cache["Z"] = Zt
            caches.append(cache)
            break
        a = act_forward(layer["activation"], Zt)
        cache["a"] = a
        mask = masks.get(i)
        A = a if mask is None else _apply_dropout(a, mask, layer["keep_prob"])
        caches.append(cache)
    return caches


def mlp_forward(params, layers, X, training=False, masks=None):
    """Output of a whole network: probabilities (softmax/sigmoid) or values (linear).

    Per layer ``i``: ``Z = A_prev @ W + b`` (batch norm: ``Z = A_prev @ W`` then
    ``Zt = gamma · Zhat + beta``), ``A = g(Z) · mask / keep_prob`` where a mask is given.

    Parameters
    ----------
    params : dict of str -> ndarray
        The model's weights: ``"{i}.W"`` (n_in, units); ``"{i}.b"`` (units,) or, for batch-norm
        layers, ``"{i}.gamma"``, ``"{i}.beta"``, ``"{i}.running_mean"``, ``"{i}.running_var"``.
    layers : list of dict
        ``{"units": int, "activation": str, "keep_prob": float = 1.0, "batch_norm": bool =
        False}``; the last layer's activation is softmax, sigmoid or linear.
    X : ndarray of shape (m, n_features)
    training : bool, default False
        Batch norm uses the batch statistics (True) or the running ones (False).
    masks : dict of int -> ndarray of shape (m, units) or None, default None
        Dropout masks (1 kept), applied exactly on the layers given (see
        :func:`mlp_dropout_masks` for the trainer's Philox masks); a mask for a layer with
        ``keep_prob == 1`` or for the output layer is an error.

    Returns
    -------
    ndarray of shape (m, units of the last layer)
    """
    X, masks = _check_network(params, layers, X, masks)
    Z = _forward(params, layers, X, training, masks)[-1]["Z"]
    return act_forward(layers[-1]["activation"], Z)


def mlp_loss_and_grads(params, layers, X, y, l2=0.0, masks=None, training=False):
    """Cost of a whole network on ``(X, y)`` and its gradients, by backpropagation.

    ::

        J = data loss + l2/(2m) · Σ_layers ||W||²
        softmax: -(1/m) Σ_i log p[i, y_i]
        sigmoid: mean over all m·n elements of -[y log p + (1-y) log(1-p)]
        linear:  mean over all m·n elements of (z - y)²
        dW += (l2/m) · W

    Parameters
    ----------
    params, layers, X, masks, training
        As in :func:`mlp_forward`.  With ``training=True`` batch-norm gradients flow through the
        batch statistics.
    y : ndarray
        ``(m,)`` class indices (softmax); ``(m,)`` or ``(m, n)`` 0/1 targets (sigmoid);
        ``(m,)`` or ``(m, n)`` values (linear).
    l2 : float, default 0.0
        The course's λ.

    Returns
    -------
    cost : float
    grads : dict of str -> ndarray
        Keyed like ``params``: ``"{i}.W"``, ``"{i}.b"`` or ``"{i}.gamma"``, ``"{i}.beta"``
        (running statistics are not trainable).
    """
    X, masks = _check_network(params, layers, X, masks)
    caches = _forward(params, layers, X, training, masks)
    m = X.shape[0]
    Z = caches[-1]["Z"]
    loss = _OUTPUT_LOSS[layers[-1]["activation"]]
    scale = 1.0 / m if loss == "xent" else 1.0 / Z.size
    sum_loss, dZt = loss_grad(loss, Z, y, scale)
    cost = sum_loss * scale
    cost += l2 / (2 * m) * sum(float(np.sum(params[f"{i}.W"] ** 2)) for i in range(len(layers)))

    grads = {}
    dA = None                               # gradient w.r.t. the output of layer i, from i + 1
    for i in reversed(range(len(layers))):
        layer, cache = layers[i], caches[i]
        if i < len(layers) - 1:             # hidden layer: dZt from dA
            mask = masks.get(i)
            if mask is not None:
                dA = _apply_dropout(dA, mask, layer["keep_prob"])
            dZt = act_backward(layer["activation"], cache["a"], dA)
        W = params[f"{i}.W"]
        if layer.get("batch_norm", False):
            gamma = params[f"{i}.gamma"]
            if training:
                dZ, dgamma, dbeta = batchnorm_backward(dZt, cache["Zhat"], gamma, cache["var"])
            else:
                dbeta = dZt.sum(axis=0)
                dgamma = (dZt * cache["Zhat"]).sum(axis=0)
                dZ = dZt * (gamma / np.sqrt(cache["var"] + BN_EPS))
            grads[f"{i}.gamma"], grads[f"{i}.beta"] = dgamma, dbeta
        else:
            dZ = dZt
            grads[f"{i}.b"] = dZ.sum(axis=0)
        grads[f"{i}.W"] = cache["A_prev"].T @ dZ + (l2 / m) * W
        dA = dZ @ W.T
    return cost, grads
