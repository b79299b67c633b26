"""scikit-learn estimators backed by fastnn: a one-import-line replacement for
``sklearn.neural_network``'s :class:`MLPClassifier` and :class:`MLPRegressor`.

``from fastnn.sklearn import MLPClassifier, MLPRegressor`` takes every parameter of scikit-learn's
estimators with the same meaning, has the same methods (``fit``, ``partial_fit``, ``predict``,
``predict_proba``, ``predict_log_proba``, ``score``; ``sample_weight`` in ``fit`` and
``partial_fit``) and fitted attributes (``coefs_``, ``intercepts_``, ``loss_``, ``loss_curve_``,
``n_iter_``, ``t_``, ...), accepts dense and sparse (CSR/CSC) X and keeps float32 data float32.
Weights start as scikit-learn's, drawn in the same order from ``random_state``; the epochs visit
the rows in the same order; losses, gradients and updates follow scikit-learn's formulas.  So the
same settings train the same network, up to floating-point rounding.

Layout (a module per concept): :mod:`._params` (legal parameter values), :mod:`._network`
(coefs_/intercepts_ over fastnn's flat parameter buffer; loss and gradient on scikit-learn's
scale), :mod:`._solvers` (SGD, Adam, fastnn's momentum and RMSprop; L-BFGS through scipy),
:mod:`._base` (fit, partial_fit, stopping rules, predictions), :mod:`._estimators`.

Where it differs from scikit-learn:

* fastnn's extras: ``solver="momentum"`` and ``"rmsprop"``; ``keep_prob`` (dropout) and
  ``batch_norm`` in the hidden layers; ``dtype`` to fix the network's dtype whatever X's;
  ``model_``, the trained :class:`fastnn.MLP`.
* The early-stopping split is stratified for multiclass targets too (scikit-learn stratifies
  only binary ones, although its documentation promises more); for binary targets the split is
  scikit-learn's own.
* The log-loss is computed exactly from the logits; scikit-learn clips probabilities to
  ``[eps, 1 - eps]`` first, so its reported loss differs once a probability is that extreme
  (the gradients agree).
* ``sample_weight`` must be finite and >= 0 with a positive sum.  A mini-batch whose weights
  are all 0 is skipped.  Rows of different weights are evaluated in one compiled call per
  distinct weight in the batch (exact, but slower when a batch holds many distinct weights);
  different weights cannot be combined with ``batch_norm``.
* ``solver="lbfgs"`` needs ``keep_prob=1`` and ``batch_norm=False`` (a deterministic
  objective); it does not pass scipy's ``iprint`` (``verbose`` prints nothing for it).
* ``partial_fit`` does not exist for ``solver="lbfgs"`` on either estimator (scikit-learn's
  regressor has the method and runs a full L-BFGS fit).
* Negative ``y`` with ``loss="poisson"`` raises ValueError.
"""
from ._estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
