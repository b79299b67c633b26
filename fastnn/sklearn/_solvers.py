"""The solvers: scikit-learn's stochastic optimizers over the flat parameter buffer, and L-BFGS.

Design: an optimizer updates the whole network's flat parameter buffer from the flat gradient
buffer in a few vector operations per step, and keeps scikit-learn's per-epoch interface
(``learning_rate``, ``iteration_ends(t)``, ``trigger_stopping(msg, verbose)``), so the
estimators' training loop reads as scikit-learn's.  L-BFGS is scipy's L-BFGS-B run on the
compiled full-batch loss and gradient.
"""
import math
import warnings

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from .. import _core


class SGD:
    """scikit-learn's stochastic gradient descent with momentum::

        v = momentum * v - lr * g
        theta += v                          (nesterov=False)
        theta += momentum * v - lr * g      (nesterov=True: Nesterov's momentum)

    ``lr_schedule``: "constant"; "invscaling", ``lr = lr0 / (t + 1) ** power_t`` after each
    epoch, ``t`` the training samples seen; "adaptive", ``lr /= 5`` each time the stopping rule
    fires, stopping once ``lr <= 1e-6``.
    """

    def __init__(self, size, dtype, learning_rate_init, lr_schedule, momentum, nesterov,
                 power_t):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule, self.momentum, self.nesterov = lr_schedule, momentum, nesterov
        self.power_t = power_t
        self.velocity = np.zeros(size, dtype=dtype)
        self._step = np.empty(size, dtype=dtype)     # lr * g
        self._update = np.empty(size, dtype=dtype)

    def fits(self, params):
        """True when the state was made for this parameter buffer's size and dtype."""
        return self.velocity.shape == params.shape and self.velocity.dtype == params.dtype

    def update(self, params, grads, n_threads):
        step, v = self._step, self.velocity
        np.multiply(grads, self.learning_rate, out=step)
        v *= self.momentum
        v -= step
        if self.nesterov:
            np.multiply(v, self.momentum, out=self._update)
            self._update -= step
            params += self._update
        else:
            params += v

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class _Fused:
    """An update by fastnn's fused kernel (``fastnn.optim``'s formulas) over the flat buffers;
    the learning rate stays constant and the stopping rule stops."""

    kind = None

    def __init__(self, size, dtype, learning_rate_init, beta_1, beta_2, epsilon):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.exp_avg = np.zeros(size, dtype=dtype)
        self.exp_avg_sq = np.zeros(size, dtype=dtype)

    def _hyper(self):
        """(lr, beta1, beta2, eps) handed to the kernel at the coming step self.t."""
        raise NotImplementedError

    def fits(self, params):
        """True when the state was made for this parameter buffer's size and dtype."""
        return self.exp_avg.shape == params.shape and self.exp_avg.dtype == params.dtype

    def update(self, params, grads, n_threads):
        self.t += 1
        lr, beta1, beta2, eps = self._hyper()
        _core.optim_step(_core.OPTIMIZER_CODES[self.kind], lr, beta1, beta2, eps, 0.0, self.t,
                         params, grads,
                         self.exp_avg, self.exp_avg_sq, n_threads)

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


class Adam(_Fused):
    """scikit-learn's Adam (Kingma & Ba)::

        m = beta_1 m + (1 - beta_1) g;   v = beta_2 v + (1 - beta_2) g**2
        theta -= lr_t m / (sqrt(v) + epsilon),   lr_t = lr sqrt(1 - beta_2**t) / (1 - beta_1**t)

    through fastnn's fused Adam kernel, whose ``eps`` sits in ``sqrt(v_hat) + eps``: handing it
    ``epsilon / sqrt(1 - beta_2**t)`` at step t gives scikit-learn's update exactly.
    ``learning_rate`` is ``lr_t`` after the last step, as scikit-learn reports it.
    """

    kind = "adam"

    def _hyper(self):
        bc2_sqrt = math.sqrt(1.0 - self.beta_2 ** self.t)
        self.learning_rate = self.learning_rate_init * bc2_sqrt / (1.0 - self.beta_1 ** self.t)
        return self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon / bc2_sqrt


class Momentum(_Fused):
    """fastnn's (the course's) momentum: ``v = beta v + (1 - beta) g;  theta -= lr v`` with
    ``beta = momentum``."""

    kind = "momentum"

    def __init__(self, size, dtype, learning_rate_init, momentum):
        super().__init__(size, dtype, learning_rate_init, momentum, 0.0, 0.0)

    def _hyper(self):
        return self.learning_rate, self.beta_1, 0.0, 0.0


class RMSprop(_Fused):
    """fastnn's RMSprop: ``s = beta_2 s + (1 - beta_2) g**2;  theta -= lr g / (sqrt(s) +
    epsilon)``."""

    kind = "rmsprop"

    def _hyper(self):
        return self.learning_rate, 0.0, self.beta_2, self.epsilon


def make_optimizer(est, size, dtype):
    """The stochastic optimizer for ``est.solver`` over ``size`` parameters."""
    lr = est.learning_rate_init
    if est.solver == "sgd":
        return SGD(size, dtype, lr, est.learning_rate, est.momentum, est.nesterovs_momentum,
                   est.power_t)
    if est.solver == "momentum":
        return Momentum(size, dtype, lr, est.momentum)
    if est.solver == "rmsprop":
        return RMSprop(size, dtype, lr, est.beta_1, est.beta_2, est.epsilon)
    return Adam(size, dtype, lr, est.beta_1, est.beta_2, est.epsilon)


def minimize_lbfgs(objective, x0, *, max_iter, max_fun, tol):
    """Minimise ``objective(x) -> (loss, gradient)`` from ``x0`` with scipy's L-BFGS-B.

    Stops when the largest gradient entry is <= ``tol``, or after ``max_iter`` iterations or
    ``max_fun`` evaluations; in the last two cases (any status other than converged) warns a
    ``ConvergenceWarning``.  Returns ``(x, loss, n_iter)``.
    """
    result = scipy.optimize.minimize(objective, x0, method="L-BFGS-B", jac=True,
                                     options={"maxfun": max_fun, "maxiter": max_iter,
                                              "gtol": tol})
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        message = (f"lbfgs failed to converge after {n_iter} iteration(s) "
                   f"(status={result.status}):\n{result.message}\n")
        if n_iter == max_iter:
            message += (f"\nIncrease the number of iterations to improve the convergence "
                        f"(max_iter={max_iter}).")
        message += ("\nYou might also want to scale the data as shown in:\n"
                    "    https://scikit-learn.org/stable/modules/preprocessing.html")
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return result.x, float(result.fun), n_iter
