"""What the two estimators share: parameters, the fit and partial_fit flow, the stochastic
training loop with scikit-learn's stopping rules, L-BFGS, and predictions.

Design: the flow and the order in which random numbers are drawn from ``random_state``
(initial weights, then the early-stopping split, then one permutation per epoch) are
scikit-learn's, so the same settings train the same way; the arithmetic of each step is fastnn's
(:mod:`._network`), and the update is one of :mod:`._solvers`.  The subclasses supply the
targets: how ``y`` is checked and encoded, the output activation, the validation score and how
outputs become predictions.
"""
import numbers
import warnings
import weakref

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, gen_batches, shuffle
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import _describe
from ._network import Network, _same_memory, glorot_uniform
from ._params import STOCHASTIC_SOLVERS, check_params
from ._solvers import make_optimizer, minimize_lbfgs

_MAX_SEED = 2**31 - 1


# estimator -> (model_, coefs_, intercepts_, their arrays, the network): see _predict_network
_PREDICT_NETWORKS = weakref.WeakKeyDictionary()

class BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ---- parameters and inputs ---------------------------------------------------------------

    def _check_params(self):
        """Check every parameter; returns the hidden layer sizes as a list."""
        sizes = check_params(self.get_params(deep=False))
        if self.solver == "lbfgs" and (self.keep_prob != 1.0 or self.batch_norm):
            raise ValueError(f"solver='lbfgs' minimises a deterministic full-batch loss: "
                             f"keep_prob must be 1.0 and batch_norm False, got "
                             f"keep_prob={self.keep_prob!r}, batch_norm={self.batch_norm!r}")
        if getattr(self, "loss", None) == "poisson" and self.batch_norm:
            raise ValueError("loss='poisson' cannot be combined with batch_norm=True")
        return sizes

    def _input_dtype(self):
        """The dtype X is validated to: float32 stays float32, anything else becomes float64
        (as scikit-learn), unless the ``dtype`` parameter fixes it."""
        return (np.float64, np.float32) if self.dtype is None else np.dtype(self.dtype)

    def _check_sample_weight(self, sample_weight, n_samples):
        if sample_weight is None:
            return None
        if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
            sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
        try:
            sw = np.asarray(sample_weight, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"sample_weight must be an array-like of numbers, got "
                            f"{_describe(sample_weight)}") from None
        if sw.shape != (n_samples,):
            raise ValueError(f"sample_weight must have shape ({n_samples},) (one weight per "
                             f"row of X), got {sw.shape}")
        if not np.all(np.isfinite(sw)):
            raise ValueError("sample_weight must be finite, got NaN or infinity")
        if np.any(sw < 0):
            raise ValueError(f"sample_weight must be >= 0, got {sw.min()!r}")
        if not sw.sum() > 0:
            raise ValueError("sample_weight must not be all zero: the loss is a weighted mean")
        if self.batch_norm and sw.min() != sw.max():
            raise ValueError("sample_weight with different weights cannot be combined with "
                             "batch_norm=True (rows of different weights are evaluated in "
                             "separate groups, which would change the batch statistics)")
        return sw

    # ---- fit -----------------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (or a 0/1 multilabel indicator matrix) for the classifier, real
            values for the regressor.
        sample_weight : array-like of shape (n_samples,), default None
            Finite weights >= 0.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = self._check_sample_weight(sample_weight, X.shape[0])
        self.n_outputs_ = Y.shape[1]
        layer_units = [X.shape[1]] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)

        if first_pass:
            network = self._initialize(Y, layer_units, X.dtype)
        else:
            network = self._continue_network(layer_units, X.dtype)
        X = network.prepare_X(X)
        if self.solver == "lbfgs":
            self._fit_lbfgs(network, X, Y, sample_weight)
        else:
            self._fit_stochastic(network, X, Y, sample_weight, incremental)
        if not np.all(np.isfinite(network.params)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _initialize(self, Y, layer_units, dtype):
        """First fit: counters, scikit-learn's initial weights, the network."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        self.coefs_, self.intercepts_ = glorot_uniform(self._random_state, layer_units,
                                                       self.activation, dtype)
        self._dropout_seed = (int(self._random_state.randint(_MAX_SEED))
                              if self.keep_prob < 1.0 else 0)
        self._n_passes = 0
        network = self._bind_network(layer_units, dtype, new=True)
        self._keep_best(network)
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        return network

    def _continue_network(self, layer_units, dtype):
        """warm_start / partial_fit: the network of the current ``coefs_``/``intercepts_``."""
        coef_units = [np.shape(self.coefs_[0])[0]] + [np.shape(c)[1] for c in self.coefs_]
        if coef_units != layer_units:
            raise ValueError(f"warm_start and partial_fit continue from coefs_, whose layer "
                             f"sizes {coef_units} do not match the data and "
                             f"hidden_layer_sizes={self.hidden_layer_sizes!r} "
                             f"({layer_units})")
        model = getattr(self, "model_", None)
        if model is not None and self.dtype is None:
            dtype = model.dtype
        elif model is None and self.dtype is None:
            given = np.asarray(self.coefs_[0]).dtype
            dtype = given if given in (np.float32, np.float64) else dtype
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        for name, default in (("n_iter_", 0), ("t_", 0), ("_n_passes", 0),
                              ("_dropout_seed", 0)):
            if not hasattr(self, name):
                setattr(self, name, default)
        if self.solver in STOCHASTIC_SOLVERS:
            for name, default in (("loss_curve_", []), ("_no_improvement_count", 0)):
                if not hasattr(self, name):
                    setattr(self, name, default)
            if self.early_stopping and getattr(self, "validation_scores_", None) is None:
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
            if not self.early_stopping and getattr(self, "best_loss_", None) is None:
                self.best_loss_ = np.inf
        network = self._bind_network(layer_units, dtype, new=False)
        best = getattr(self, "_best_params", None)
        if best is None or best.shape != network.params.shape or best.dtype != network.dtype:
            self._keep_best(network)
        return network

    def _keep_best(self, network):
        """Copy the network's weights (and batch-norm statistics) as early stopping's best."""
        self._best_params = network.params.copy()
        self._best_buffers = network.model._buffers.copy()

    def _bind_network(self, layer_units, dtype, new):
        """The network holding ``coefs_``/``intercepts_`` (``model_``, rebuilt when the
        architecture or dtype changed); afterwards ``coefs_``/``intercepts_`` are views into
        its parameter buffer."""
        config = (layer_units, self.activation, self.out_activation_, dtype, self.keep_prob,
                  self.batch_norm)
        model = None if new else getattr(self, "model_", None)
        network = None
        if model is not None:
            network = Network(model, self.out_activation_, self._dropout_seed)
            if not network.matches(*config):
                network = None
        if network is None:
            network = Network.build(*config, dropout_seed=self._dropout_seed)
            self.model_ = network.model
        network.load(self.coefs_, self.intercepts_)
        self.coefs_, self.intercepts_ = network.views()
        return network

    def _network(self):
        """The fitted network, with any ``coefs_``/``intercepts_`` set by hand copied in."""
        check_is_fitted(self, ("coefs_", "intercepts_"))
        if getattr(self, "model_", None) is None:   # coefs_, intercepts_ set by hand only
            units = [np.shape(self.coefs_[0])[0]] + [np.shape(c)[1] for c in self.coefs_]
            dtype = np.asarray(self.coefs_[0]).dtype
            dtype = dtype if dtype in (np.float32, np.float64) else np.float64
            self.model_ = Network.build(units, self.activation, self.out_activation_,
                                        dtype).model
        network = Network(self.model_, self.out_activation_, getattr(self, "_dropout_seed", 0))
        network.load(self.coefs_, self.intercepts_)
        return network

    def _predict_network(self):
        """As _network, without rebuilding the network and re-reading coefs_/intercepts_ on
        every prediction: the one built last is reused while model_, coefs_ and intercepts_ are
        the very objects (lists and arrays) it was built with, and those arrays are views of its
        parameters (as after fit), so that any change made in them is already in the network;
        arrays set by hand are copied in on every call, as before.  Kept outside the
        estimator's __dict__ (predict must not change it, nor pickling carry it)."""
        cached = _PREDICT_NETWORKS.get(self)
        coefs, intercepts = getattr(self, "coefs_", None), getattr(self, "intercepts_", None)
        if (cached is not None and cached[0] is getattr(self, "model_", None)
                and cached[1] is coefs and cached[2] is intercepts
                and len(cached[3]) == len(coefs) and len(cached[4]) == len(intercepts)
                and all(a is b for a, b in zip(cached[3], coefs))
                and all(a is b for a, b in zip(cached[4], intercepts))):
            return cached[5]
        network = self._network()
        own_coefs, own_intercepts = network.views()
        if all(_same_memory(a, b) for a, b in zip(self.coefs_ + self.intercepts_,
                                                  own_coefs + own_intercepts)):
            _PREDICT_NETWORKS[self] = (self.model_, self.coefs_, self.intercepts_,
                                       tuple(self.coefs_), tuple(self.intercepts_), network)
        return network

    # ---- the stochastic solvers --------------------------------------------------------------

    def _fit_stochastic(self, network, X, Y, sample_weight, incremental):
        optimizer = getattr(self, "_optimizer", None)
        if not incremental or optimizer is None or not optimizer.fits(network.params):
            self._optimizer = make_optimizer(self, network.params.size, network.dtype)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            X_train, X_val, Y_train, Y_val, sw_train, sw_val = self._validation_split(
                X, Y, sample_weight)
            y_val = self._decode_targets(Y_val)
        else:
            X_train, Y_train, sw_train = X, Y, sample_weight
            X_val = y_val = sw_val = None
        T = network.prepare_targets(Y_train)
        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)
                accumulated_loss = 0.0
                for batch_slice in gen_batches(n_samples, batch_size):
                    idx = sample_idx[batch_slice] if self.shuffle else batch_slice
                    swb = None if sw_train is None else sw_train[idx]
                    loss, grads = network.batch_loss_grad(network.rows(X_train, idx), T[idx],
                                                          swb, self.alpha, self._n_passes)
                    self._n_passes += 1
                    if grads is not None:
                        self._optimizer.update(network.params, grads, network.n_threads)
                        accumulated_loss += loss * (batch_slice.stop - batch_slice.start)
                self.n_iter_ += 1
                self.loss_ = accumulated_loss / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(network, X_val, y_val, sw_val)
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
                           % (what, self.tol, self.n_iter_no_change))
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                                  "optimization hasn't converged yet." % self.max_iter,
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            network.params[...] = self._best_params
            network.model._buffers[...] = self._best_buffers

    def _validation_split(self, X, Y, sample_weight):
        """scikit-learn's held-out split (drawn from random_state after the weights),
        stratified for binary and multiclass targets."""
        arrays = (X, Y) if sample_weight is None else (X, Y, sample_weight)
        parts = train_test_split(*arrays, random_state=self._random_state,
                                 test_size=self.validation_fraction,
                                 stratify=self._stratify(Y))
        if sample_weight is None:
            parts += [None, None]
        X_train, X_val, Y_train, Y_val, sw_train, sw_val = parts
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        return X_train, X_val, Y_train, Y_val, sw_train, sw_val

    def _update_no_improvement_count(self, network, X_val, y_val, sw_val):
        if X_val is not None:
            score = self._validation_score(network, X_val, y_val, sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._keep_best(network)
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _validation_score(self, network, X, y, sample_weight):
        """Score of the current network on held-out (prepared) X and y: NaN when an output
        is not finite."""
        out = network.forward(X)
        if not np.all(np.isfinite(out)):
            return np.nan
        return self._score_function(y, self._outputs_to_predictions(out),
                                    sample_weight=sample_weight)

    # ---- L-BFGS ----------------------------------------------------------------------------

    def _fit_lbfgs(self, network, X, Y, sample_weight):
        T = network.prepare_targets(Y)
        params = network.params

        def objective(x):
            params[...] = x
            loss, grads = network.objective(X, T, sample_weight, self.alpha)
            return loss, grads.astype(np.float64)

        x, self.loss_, self.n_iter_ = minimize_lbfgs(
            objective, params.astype(np.float64), max_iter=self.max_iter,
            max_fun=self.max_fun, tol=self.tol)
        params[...] = x

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight, *workspace):
        """Loss and gradient over (X, y) at ``packed_coef_inter``, in scikit-learn's packing
        (every ``coefs_`` entry raveled, then every ``intercepts_`` entry); ``y`` is the
        (n_samples, n_outputs) encoded target.  The network keeps the given parameters.
        scikit-learn's estimators have this hook; ``workspace`` (its buffers) is unused."""
        if isinstance(sample_weight, list):   # scikit-learn < 1.7's call: no sample_weight
            sample_weight = None
        network = self._network()
        coefs, intercepts = network.views()
        base = network.params.__array_interface__["data"][0]
        item = network.params.itemsize
        order = np.concatenate([np.arange(a.size) + (a.__array_interface__["data"][0] - base)
                                // item for a in coefs + intercepts])
        network.params[order] = packed_coef_inter
        Y = np.asarray(y).reshape(len(y), -1)
        sw = self._check_sample_weight(sample_weight, Y.shape[0])
        loss, grads = network.objective(network.prepare_X(X), network.prepare_targets(Y), sw,
                                        self.alpha)
        return loss, grads[order].astype(np.float64)

    # ---- predictions -----------------------------------------------------------------------

    def _forward(self, X):
        """Network outputs (n_samples, n_outputs) on X, in the network's dtype."""
        network = self._predict_network()
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=(np.float64, np.float32))
        return network.forward(X)

    def __setstate__(self, state):
        super().__setstate__(state)
        # Views do not survive pickling: point coefs_ and intercepts_ back into model_.
        if getattr(self, "model_", None) is not None and hasattr(self, "coefs_"):
            network = Network(self.model_, self.out_activation_)
            try:
                network.load(self.coefs_, self.intercepts_)
            except ValueError:   # replaced by hand with other shapes: left for fit to report
                return
            self.coefs_, self.intercepts_ = network.views()
