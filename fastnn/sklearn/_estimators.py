"""MLPClassifier and MLPRegressor: scikit-learn's signatures, targets and predictions."""
import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

from ._base import BaseMLP

_PARAMETERS = """
    hidden_layer_sizes : int or sequence of int, default (100,)
        Units of each hidden layer (``()``: no hidden layer).
    activation : {"relu", "tanh", "logistic", "identity"}, default "relu"
        Hidden activation; fastnn's names "sigmoid", "linear" and "leaky_relu" (slope 0.01)
        are accepted too.
    solver : {"adam", "sgd", "lbfgs", "momentum", "rmsprop"}, default "adam"
        scikit-learn's Adam, SGD with (Nesterov) momentum, or L-BFGS (scipy's L-BFGS-B on the
        full-batch loss); fastnn's "momentum" (``v = momentum v + (1 - momentum) g;
        W -= lr v``) and "rmsprop" (``beta_2``, ``epsilon``).
    alpha : float >= 0, default 1e-4
        L2 strength: ``alpha / (2 m) sum ||W||^2`` over each batch of m rows (of total sample
        weight m).
    batch_size : int or "auto", default "auto"
        Rows per mini-batch, ``min(200, n_samples)`` for "auto"; clipped to n_samples.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        For ``solver="sgd"``: "invscaling" sets ``lr = learning_rate_init / (t + 1) **
        power_t`` after each epoch (t: samples seen); "adaptive" divides lr by 5 each time the
        stopping rule fires, until ``lr <= 1e-6``.
    learning_rate_init : float > 0, default 1e-3
    power_t : float >= 0, default 0.5
    max_iter : int >= 1, default 200
        Epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default True
        Permute the rows every epoch.
    random_state : int, RandomState or None, default None
        Draws the initial weights (scikit-learn's Glorot-uniform, drawn as it draws them), the
        early-stopping split and the permutations.
    tol : float >= 0, default 1e-4
        Stochastic solvers stop (or, "adaptive", divide lr) after ``n_iter_no_change`` epochs
        that improve the training loss (or validation score) by less than tol; lbfgs stops when
        no gradient entry exceeds tol.
    verbose : bool or int, default False
        Print the loss after every epoch.
    warm_start : bool, default False
        Continue from ``coefs_``/``intercepts_`` (fresh optimizer state).
    momentum : float in [0, 1], default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows (stratified, except multilabel) and stop
        on its score; the best-scoring weights are kept.
    validation_fraction : float in [0, 1), default 0.1
    beta_1, beta_2 : float in [0, 1), default 0.9, 0.999
    epsilon : float > 0, default 1e-8
    n_iter_no_change : int >= 1 or numpy.inf, default 10
    max_fun : int >= 1, default 15000
        Loss evaluations allowed to lbfgs.
    keep_prob : float in (0, 1], default 1.0
        fastnn: dropout keep probability of every hidden layer (stochastic solvers).
    batch_norm : bool, default False
        fastnn: batch normalisation in every hidden layer (stochastic solvers); its shift beta
        is the layer's entry in ``intercepts_``.
    dtype : {None, "float32", "float64"}, default None
        fastnn: the network's dtype; None follows X as scikit-learn does (float32 stays
        float32, anything else is float64).
"""

_ATTRIBUTES = """
    loss_ : float
        Loss of the last epoch (lbfgs: at the solution), L2 term included.
    best_loss_ : float or None
        Lowest epoch loss (None with early stopping).
    loss_curve_ : list of float
        Loss of each epoch (stochastic solvers).
    validation_scores_ : list of float or None
        Held-out score after each epoch (early stopping).
    best_validation_score_ : float or None
    t_ : int
        Training samples seen.
    coefs_, intercepts_ : list of ndarray
        Weights and biases of each layer: views into ``model_``'s parameter buffer (arrays
        assigned here by hand are copied into it before the next use).
    n_iter_ : int
        Epochs (or lbfgs iterations) of the last ``fit``.
    n_layers_, n_outputs_, out_activation_, n_features_in_, feature_names_in_
        As scikit-learn's.
    model_ : fastnn.MLP
        The network (``model_.save`` writes it as a fastnn model file).
"""


def _check_partial_fit_first_call(clf, classes):
    """True on the first partial_fit (``classes`` then required), after checking that
    ``classes`` agrees with earlier calls."""
    if getattr(clf, "classes_", None) is None and classes is None:
        raise ValueError("classes must be passed on the first call to partial_fit.")
    if classes is not None:
        if getattr(clf, "classes_", None) is not None:
            if not np.array_equal(clf.classes_, unique_labels(classes)):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                                 f"partial_fit, was: {clf.classes_!r}")
        else:
            clf.classes_ = unique_labels(classes)
            return True
    return False


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = f"""Multilayer-perceptron classifier: scikit-learn's ``MLPClassifier`` trained
    by fastnn's compiled kernels.

    Log-loss on a softmax output for multiclass targets, on one logistic output for two
    classes and on one logistic output per label for a multilabel indicator ``y``.  Sparse X is
    densified one batch at a time.  See :mod:`fastnn.sklearn` for the few differences from
    scikit-learn.

    Parameters
    ----------{_PARAMETERS}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
{_ATTRIBUTES}"""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 keep_prob=1.0, batch_norm=False, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.keep_prob = keep_prob
        self.batch_norm = batch_norm
        self.dtype = dtype

    # ---- targets -------------------------------------------------------------------------------

    def _validate_input(self, X, y, incremental, reset):
        """(X, Y): Y the (n_samples, n_outputs) 0/1 encoding of y by the label binarizer,
        which the first fit defines and later calls check y against."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=self._input_dtype(), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self, Y):
        if self.n_outputs_ == 1:
            return Y       # the encoded column, as scikit-learn stratifies binary targets
        if self._label_binarizer.y_type_ == "multiclass":
            return Y.argmax(axis=1)
        return None        # multilabel

    def _decode_targets(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _outputs_to_predictions(self, out):
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    _score_function = staticmethod(accuracy_score)

    def _fit(self, X, y, sample_weight=None, incremental=False):
        super()._fit(X, y, sample_weight=sample_weight, incremental=incremental)
        if self._label_binarizer.y_type_ != "multilabel-indicator" and len(self.classes_) > 1:
            self.model_.classes_ = self.classes_    # model_.predict and model_.save keep them
        return self

    # ---- public methods ----------------------------------------------------------------------

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current state.

        ``classes`` (every label that will ever be seen) is required on the first call;
        ``y`` need not hold them all.  Only for the stochastic solvers.  Returns self.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Labels (n_samples,) from ``classes_``, or a (n_samples, n_labels) 0/1 matrix for
        multilabel targets."""
        return self._outputs_to_predictions(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), or per-label probabilities
        (n_samples, n_labels) for multilabel targets; the network's dtype."""
        out = self._forward(X)
        if self.n_outputs_ == 1:
            out = out.ravel()
            return np.vstack([1 - out, out]).T
        return out

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = f"""Multilayer-perceptron regressor: scikit-learn's ``MLPRegressor`` trained by
    fastnn's compiled kernels.

    An identity output on half the squared error, or an exponential output on half the Poisson
    deviance (``loss="poisson"``, non-negative y); one output per column of y.  Sparse X is
    densified one batch at a time.  See :mod:`fastnn.sklearn` for the few differences from
    scikit-learn.

    Parameters
    ----------
    loss : {{"squared_error", "poisson"}}, default "squared_error"{_PARAMETERS}
    Attributes
    ----------{_ATTRIBUTES}"""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 keep_prob=1.0, batch_norm=False, dtype=None):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.keep_prob = keep_prob
        self.batch_norm = batch_norm
        self.dtype = dtype

    def _check_params(self):
        if not isinstance(self.loss, str):
            raise TypeError(f"loss must be 'squared_error' or 'poisson', got "
                            f"{self.loss!r}; as in scikit-learn, loss is MLPRegressor's first "
                            f"positional parameter: pass hidden_layer_sizes by keyword")
        return super()._check_params()

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=self._input_dtype(), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("y must hold values >= 0 for loss='poisson'")
        return X, y.reshape(y.shape[0], -1)

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _stratify(self, Y):
        return None

    def _decode_targets(self, Y):
        return Y

    def _outputs_to_predictions(self, out):
        return out.ravel() if out.shape[1] == 1 else out

    _score_function = staticmethod(r2_score)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current state (stochastic solvers
        only).  Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,) for one output, else (n_samples, n_outputs); the network's
        dtype."""
        return self._outputs_to_predictions(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
