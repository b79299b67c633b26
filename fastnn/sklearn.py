"""scikit-learn estimators backed by fastnn: :class:`MLPClassifier` and :class:`MLPRegressor`.

Design: each estimator is a thin shell in scikit-learn's conventions (parameters stored untouched
by ``__init__``, checked in ``fit``; inputs checked with ``sklearn.utils.validation``; fitted
attributes end in ``_``) around a :class:`fastnn.MLP` (``model_``) trained by a
:class:`fastnn.Trainer`.  The stopping rules of scikit-learn's stochastic solvers (``tol``,
``n_iter_no_change``, ``early_stopping``) run as a Trainer callback between epochs.

Parameters keep scikit-learn's names and meanings, so a model configured for
``sklearn.neural_network.MLPClassifier`` trains the same objective here:

* ``alpha``.  scikit-learn's stochastic solvers add ``alpha/(2 m) ||W||^2`` to each mini-batch's
  loss (``m`` = rows of that batch), so each step decays the weights by ``(alpha/m) W``
  (scikit-learn issues #6780, #10477: alpha's strength depends on the batch size).  fastnn's
  ``l2=lambda`` is defined over the whole training set of N examples and adds ``(lambda/N) W``
  per step.  The estimators pass ``l2 = alpha * N / batch_size`` (divided by the loss scale
  below), which makes every full step decay the weights exactly as scikit-learn does and the
  reported ``loss_`` carry the same penalty.  Full-batch training (``batch_size >= N``) gives
  ``l2 = alpha``: the course's lambda.  Users who want a batch-size-independent lambda use
  :class:`fastnn.Trainer` (``l2=``) directly.
* Loss scale.  ``MLPRegressor`` minimises scikit-learn's squared loss ``mean((y - p)**2) / 2``,
  half of fastnn's MSE: the network trains fastnn's MSE with ``l2`` doubled, ``sgd``/``momentum``
  learning rates halved and ``adam``/``rmsprop`` epsilon doubled, which follows exactly the
  trajectory of the halved objective; ``loss_`` and ``loss_curve_`` are reported on
  scikit-learn's scale.
* ``solver="sgd"`` is scikit-learn's heavy-ball momentum ``v = momentum v - lr g; W += v``, i.e.
  ``fastnn.optim.Momentum(lr / (1 - momentum), beta=momentum)`` (plain ``SGD(lr)`` when
  ``momentum=0``); Nesterov momentum is not offered.  ``solver="momentum"`` is the course's
  ``v = beta v + (1 - beta) g; W -= lr v`` with ``beta = momentum``.  ``"adam"`` and
  ``"rmsprop"`` take ``beta_1``, ``beta_2``, ``epsilon`` (fastnn's eps sits outside the square
  root, as PyTorch).  ``"lbfgs"`` is not offered.

Other differences from scikit-learn: weights start as fastnn's defaults (He for relu and
leaky_relu, Xavier otherwise) rather than Glorot-uniform; a binary classifier has one sigmoid
output as scikit-learn's; the learning rate is constant (no ``learning_rate``/``power_t``); sparse
input is refused (fastnn's kernels are dense); there is no ``partial_fit`` and no
``sample_weight``.  ``warm_start=True`` continues from the fitted weights with a fresh optimizer
state, as scikit-learn does.
"""
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import optim
from ._validation import _describe, check_scalar
from .model import MLP, Dense
from .trainer import Trainer

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names -> fastnn's; fastnn's own names map to themselves.
ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "linear": "linear", "sigmoid": "sigmoid", "leaky_relu": "leaky_relu"}
SOLVERS = ("sgd", "adam", "momentum", "rmsprop")
# fastnn output activation -> scikit-learn's name for out_activation_
_OUT_NAMES = {"softmax": "softmax", "sigmoid": "logistic", "linear": "identity"}
_MAX_SEED = 2**31 - 1


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {_describe(value)}")
    return bool(value)


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {_describe(value)}")
    return value


class _Monitor:
    """Trainer callback: scikit-learn's per-epoch bookkeeping and stopping rule.

    Without early stopping, an epoch counts as "no improvement" when its training loss is above
    ``best_loss_ - tol``; with it, when the held-out score is below ``best_validation_score_ +
    tol`` (and the best-scoring weights are kept).  Training stops once more than
    ``n_iter_no_change`` epochs in a row did not improve.
    """

    def __init__(self, est, loss_scale, n_train, validation):
        self.est, self.loss_scale = est, loss_scale
        self.n_train, self.validation = n_train, validation
        self.no_improvement = 0
        self.best_weights = None
        self.stopped = False

    def on_epoch_end(self, trainer, epoch, logs):
        est = self.est
        loss = self.loss_scale * logs["loss"]
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        est.t_ += self.n_train
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}", flush=True)
        if self.validation is not None:
            X_val, y_val = self.validation
            score = est._score_model(X_val, y_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:.6f}", flush=True)
            improved = score >= est.best_validation_score_ + est.tol
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_weights = trainer.model.get_weights()
        else:
            improved = loss <= est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, loss)
        self.no_improvement = 0 if improved else self.no_improvement + 1
        if self.no_improvement > est.n_iter_no_change:
            what = ("Validation score" if self.validation is not None else "Training loss")
            if est.verbose:
                print(f"{what} did not improve more than tol={est.tol} for "
                      f"{est.n_iter_no_change} consecutive epochs. Stopping.", flush=True)
            self.stopped = True
            trainer.stop_training = True


class _BaseMLP(BaseEstimator):
    """Shared parameters, checks and training loop of the two estimators."""

    _loss_scale = 1.0

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, keep_prob=1.0,
                 batch_norm=False, dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.keep_prob = keep_prob
        self.batch_norm = batch_norm
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    # ---- parameters --------------------------------------------------------------------------

    def _check_params(self):
        """Check every parameter (named in the message); return the hidden sizes as a tuple."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints, got "
                             f"{_describe(self.hidden_layer_sizes)}") from None
        for s in sizes:
            if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1:
                raise ValueError(f"hidden_layer_sizes must hold ints >= 1, got "
                                 f"{_describe(self.hidden_layer_sizes)}")
        _check_choice(self.activation, "activation", ACTIVATIONS)
        _check_choice(self.solver, "solver", SOLVERS)
        check_scalar(self.alpha, "alpha", "float", low=0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            if isinstance(self.batch_size, str):
                raise ValueError(f"batch_size must be 'auto' or an int >= 1, got "
                                 f"{_describe(self.batch_size)}")
            check_scalar(self.batch_size, "batch_size", "int", low=1)
        check_scalar(self.learning_rate_init, "learning_rate_init", "float", low=0.0,
                     low_inclusive=False)
        check_scalar(self.max_iter, "max_iter", "int", low=1)
        _check_bool(self.shuffle, "shuffle")
        check_scalar(self.tol, "tol", "float", low=0.0)
        _check_bool(self.warm_start, "warm_start")
        check_scalar(self.momentum, "momentum", "float", low=0.0, high=1.0, high_inclusive=False)
        _check_bool(self.early_stopping, "early_stopping")
        check_scalar(self.validation_fraction, "validation_fraction", "float", low=0.0, high=1.0,
                     low_inclusive=False, high_inclusive=False)
        for name in ("beta_1", "beta_2"):
            check_scalar(getattr(self, name), name, "float", low=0.0, high=1.0,
                         high_inclusive=False)
        check_scalar(self.epsilon, "epsilon", "float", low=0.0, low_inclusive=False)
        check_scalar(self.n_iter_no_change, "n_iter_no_change", "int", low=1)
        check_scalar(self.keep_prob, "keep_prob", "float", low=0.0, high=1.0,
                     low_inclusive=False)
        _check_bool(self.batch_norm, "batch_norm")
        if not (isinstance(self.dtype, str) and self.dtype in ("float32", "float64")):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {_describe(self.dtype)}")
        return sizes

    def _optimizer(self):
        """The fastnn optimizer for ``solver`` on fastnn's loss (see the module docstring)."""
        lr, s = float(self.learning_rate_init), self._loss_scale
        if self.solver == "sgd":
            if self.momentum == 0:
                return optim.SGD(lr * s)
            return optim.Momentum(lr * s / (1.0 - self.momentum), beta=self.momentum)
        if self.solver == "momentum":
            return optim.Momentum(lr * s, beta=self.momentum)
        if self.solver == "rmsprop":
            return optim.RMSprop(lr, beta2=self.beta_2, eps=self.epsilon / s)
        return optim.Adam(lr, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon / s)

    # ---- fit ---------------------------------------------------------------------------------

    def _fit(self, X, y):
        sizes = self._check_params()
        continuing = self.warm_start and hasattr(self, "model_")
        dtype = np.dtype(self.dtype)
        if continuing and self.model_.dtype != dtype:
            raise ValueError(f"warm_start: dtype changed from {self.model_.dtype.name!r} to "
                             f"{self.dtype!r} since the previous fit")
        X, y = validate_data(self, X, y, reset=not continuing, dtype=dtype, multi_output=True,
                             y_numeric=isinstance(self, RegressorMixin))
        targets, n_outputs, out_activation = self._prepare_targets(y, continuing)
        rng = check_random_state(self.random_state)
        model_seed, trainer_seed, split_seed = (int(rng.randint(_MAX_SEED)) for _ in range(3))

        validation = None
        if self.early_stopping:
            stratify = targets if isinstance(self, ClassifierMixin) and targets.ndim == 1 else None
            X, X_val, targets, y_val = train_test_split(
                X, targets, test_size=self.validation_fraction, random_state=split_seed,
                stratify=stratify)
            validation = (X_val, y_val)
        n_train = X.shape[0]

        if continuing:
            model = self.model_
            self._check_architecture(model, sizes, n_outputs, out_activation)
            model.classes_ = None   # trained on indices; labels are mapped here, not in model_
        else:
            act = ACTIVATIONS[self.activation]
            layers = [Dense(units, act, keep_prob=self.keep_prob, batch_norm=self.batch_norm)
                      for units in sizes]
            layers.append(Dense(n_outputs, out_activation))
            model = MLP(X.shape[1], layers, dtype=dtype, seed=model_seed)
            self.model_ = model
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.validation_scores_ = None
                self.best_validation_score_ = None
                self.best_loss_ = np.inf
        if self.early_stopping and self.validation_scores_ is None:  # warm start switched it on
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf

        if isinstance(self.batch_size, str):
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` larger than sample size. It is going to be "
                              "clipped", UserWarning)
            batch_size = min(self.batch_size, n_train)
        l2 = self.alpha * n_train / batch_size / self._loss_scale
        trainer = Trainer(model, optimizer=self._optimizer(), l2=l2, batch_size=batch_size,
                          shuffle=self.shuffle, seed=(trainer_seed + self.n_iter_) % _MAX_SEED)
        monitor = _Monitor(self, self._loss_scale, n_train, validation)
        try:
            trainer.fit(X, targets, epochs=self.max_iter, callbacks=[monitor], progress=False)
        finally:
            if monitor.best_weights is not None:
                model.set_weights(monitor.best_weights)
            if isinstance(self, ClassifierMixin) and not self._multilabel:
                model.classes_ = self.classes_
            self._set_weight_attributes()
        self.loss_ = self.loss_curve_[-1]
        if not monitor.stopped:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          f"and the optimization hasn't converged yet.", ConvergenceWarning)
        return self

    def _check_architecture(self, model, sizes, n_outputs, out_activation):
        hidden = tuple(layer.units for layer in model.layers[:-1])
        out = model.layers[-1]
        if hidden != sizes or out.units != n_outputs or out.activation != out_activation:
            raise ValueError(f"warm_start: the network of the previous fit (hidden "
                             f"{hidden}, {out.units} {out.activation} outputs) does not match "
                             f"hidden_layer_sizes={sizes} and the targets ({n_outputs} "
                             f"{out_activation} outputs)")

    def _set_weight_attributes(self):
        weights = self.model_.get_weights()
        self.coefs_ = [weights[f"{i}.W"] for i in range(len(self.model_.layers))]
        # A batch-norm layer has no bias: its shift beta stands in for it.
        self.intercepts_ = [weights.get(f"{i}.b", weights.get(f"{i}.beta"))
                            for i in range(len(self.model_.layers))]
        self.n_layers_ = len(self.model_.layers) + 1
        self.n_outputs_ = self.model_.n_outputs
        self.out_activation_ = _OUT_NAMES[self.model_.layers[-1].activation]

    def _forward(self, X):
        """Network output on X (checked against the fit) as float64."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=self.model_.dtype)
        return self.model_.forward(X).astype(np.float64)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer-perceptron classifier with scikit-learn's interface, trained by fastnn.

    Multiclass targets get a softmax output and cross-entropy; two classes one sigmoid unit and
    binary cross-entropy (as scikit-learn); a 2-D 0/1 indicator ``y`` (multilabel) one sigmoid
    unit per label.  See the module docstring for how ``alpha`` and ``solver`` map to fastnn.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Units of each hidden layer (``()``: no hidden layer, i.e. logistic regression).
    activation : {"relu", "tanh", "logistic", "identity", "leaky_relu", "sigmoid", "linear"},
        default "relu"
        Hidden activation; scikit-learn's names and fastnn's are both accepted.
    solver : {"adam", "sgd", "momentum", "rmsprop"}, default "adam"
    alpha : float >= 0, default 1e-4
        L2 strength with scikit-learn's meaning: each step adds ``(alpha / batch_size) W`` to the
        gradient (fastnn ``l2 = alpha * n_train / batch_size``).
    batch_size : int or "auto", default "auto"
        ``"auto"``: ``min(200, n_train)``; clipped to ``n_train``.
    learning_rate_init : float > 0, default 1e-3
    max_iter : int >= 1, default 200
        Maximum number of epochs.
    shuffle : bool, default True
        Permute the training data every epoch.
    random_state : int, RandomState instance or None, default None
        Seeds the initial weights, the permutations, the dropout masks and the validation split.
    tol : float >= 0, default 1e-4
    verbose : bool, default False
        Print the loss (and validation score) after every epoch.
    warm_start : bool, default False
        Continue from the previous fit's weights (fresh optimizer state).
    momentum : float in [0, 1), default 0.9
        For ``solver="sgd"`` (heavy ball) and ``"momentum"`` (the course's beta).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified) and stop when its
        accuracy has not improved by ``tol`` for ``n_iter_no_change`` epochs; the best weights
        are kept.  Otherwise training stops when the training loss has not decreased by ``tol``
        for ``n_iter_no_change`` epochs.
    validation_fraction : float in (0, 1), default 0.1
    beta_1, beta_2 : float in [0, 1), default 0.9, 0.999
        Adam's moment decays (``beta_2`` is RMSprop's too).
    epsilon : float > 0, default 1e-8
    n_iter_no_change : int >= 1, default 10
    keep_prob : float in (0, 1], default 1.0
        Dropout keep probability of every hidden layer (fastnn).
    batch_norm : bool, default False
        Batch normalisation in every hidden layer (fastnn).
    dtype : {"float32", "float64"}, default "float32"
        The network's dtype (fastnn).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (``arange(n_labels)`` for multilabel ``y``).
    model_ : fastnn.MLP
        The trained network (its ``classes_`` holds the labels, so ``model_.save`` keeps them).
    coefs_, intercepts_ : list of ndarray
        ``W`` and ``b`` of each layer (``beta`` for batch-norm layers), copies at the end of fit.
    loss_ : float
        Training loss of the last epoch, L2 term included.
    loss_curve_ : list of float
    best_loss_ : float or None
        Lowest training loss (``None`` with ``early_stopping``).
    validation_scores_ : list of float or None
        Held-out accuracy after each epoch (``None`` without ``early_stopping``).
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run (summed over warm-started fits).
    t_ : int
        Training samples seen.
    n_features_in_, feature_names_in_, n_outputs_, n_layers_, out_activation_
        As scikit-learn's.
    """

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and y (n_samples,) labels or (n_samples,
        n_labels) 0/1 indicators.  Returns self."""
        return self._fit(X, y)

    def _prepare_targets(self, y, continuing):
        if y.ndim == 2 and y.shape[1] > 1:
            if type_of_target(y) != "multilabel-indicator":
                raise ValueError(f"y of shape {y.shape} must be a 0/1 multilabel indicator "
                                 f"matrix; multiclass-multioutput targets are not supported")
            classes = np.arange(y.shape[1])
            targets = np.asarray(y, dtype=self.dtype)
            n_outputs, out_activation = y.shape[1], "sigmoid"
        else:
            y = column_or_1d(y, warn=True)
            check_classification_targets(y)
            classes, targets = np.unique(y, return_inverse=True)
            if classes.size < 2:
                raise ValueError(f"y holds only one class ({classes[0]!r}); a classifier needs "
                                 f"at least 2 classes")
            if classes.size == 2:
                targets = targets.astype(self.dtype)
                n_outputs, out_activation = 1, "sigmoid"
            else:
                n_outputs, out_activation = classes.size, "softmax"
        if continuing and (len(classes) != len(self.classes_) or
                           np.any(classes != self.classes_)):
            raise ValueError(f"warm_start can only be used where y has the same classes as in "
                             f"the previous call to fit: {list(self.classes_)} before, "
                             f"{list(classes)} now")
        self.classes_ = classes
        self._multilabel = out_activation == "sigmoid" and n_outputs > 1
        return targets, n_outputs, out_activation

    def _indicator(self, proba):
        """Predicted class indices (or multilabel 0/1 matrix) from the network output."""
        if self.model_.layers[-1].activation == "softmax":
            return proba.argmax(axis=1)
        if self._multilabel:
            return (proba > 0.5).astype(np.int64)
        return (proba[:, 0] > 0.5).astype(np.int64)

    def _score_model(self, X, y):
        """Accuracy of the network on prepared (X, target indices): the validation score."""
        pred = self._indicator(self.model_.forward(X))
        return accuracy_score(np.asarray(y).astype(np.int64), pred)

    def predict_proba(self, X):
        """Class probabilities: (n_samples, n_classes), or (n_samples, n_labels) for
        multilabel, float64."""
        out = self._forward(X)
        if self.model_.layers[-1].activation == "sigmoid" and not self._multilabel:
            return np.hstack([1.0 - out, out])
        return out

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Labels (n_samples,) from ``classes_``, or a (n_samples, n_labels) 0/1 matrix for
        multilabel."""
        pred = self._indicator(self._forward(X))
        return pred if self._multilabel else self.classes_[pred]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer-perceptron regressor with scikit-learn's interface, trained by fastnn.

    A linear output trained on scikit-learn's squared loss ``mean((y - p)**2) / 2`` (fastnn's
    MSE, rescaled as the module docstring explains).  ``y`` of shape (n_samples,) or
    (n_samples, n_targets); ``predict`` returns the same number of dimensions as the ``y`` of
    ``fit``.  Parameters and attributes as :class:`MLPClassifier` (with ``early_stopping``
    scoring R^2 on the held-out part; no ``classes_``).
    """

    _loss_scale = 0.5

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_targets).
        Returns self."""
        return self._fit(X, y)

    def _prepare_targets(self, y, continuing):
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        targets = np.asarray(y, dtype=self.dtype)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if continuing and getattr(self, "_y_ndim", y.ndim) != y.ndim:
            raise ValueError(f"warm_start: y has {y.ndim} dimensions, {self._y_ndim} in the "
                             f"previous fit")
        self._y_ndim = y.ndim
        return targets, n_outputs, "linear"

    def _score_model(self, X, y):
        """R^2 of the network on prepared (X, y): the validation score."""
        return r2_score(y, self.model_.forward(X).reshape(np.shape(y)))

    def predict(self, X):
        """Predictions, float64: (n_samples,) or (n_samples, n_targets) like the fitted y."""
        out = self._forward(X)
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
