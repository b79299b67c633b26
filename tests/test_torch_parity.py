"""Parity with PyTorch (an optional test dependency; CI installs torch==2.13.0, CPU build).

Independent oracle: ``torch.optim`` and ``torch.nn.BatchNorm1d`` with autograd, in float64, on
the same network, initial weights and batches as fastnn.  fastnn stores ``W`` as (n_in, n_out);
a ``torch.nn.Linear`` holds ``weight`` = ``W.T``.
"""
import numpy as np
import pytest

import fastnn as fn

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-9
DIMS = (10, 32, 16, 4)
ACTS = ("relu", "tanh", "softmax")
N, BS = 76, 16          # 5 steps per epoch (4 x 16 + a last batch of 12): 20 epochs = 100 steps
EPOCHS = 20


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    X = rng.standard_normal((N, DIMS[0]))
    y = rng.integers(0, DIMS[-1], N)
    return X, y


def t64(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def make_model(seed=3):
    model = fn.MLP(DIMS[0], [fn.Dense(u, a) for u, a in zip(DIMS[1:], ACTS)], dtype="float64",
                   seed=seed)
    rng = np.random.default_rng(seed + 100)
    w = model.get_weights()
    for i in range(len(ACTS)):           # non-zero biases: every parameter moves from step 1
        w[f"{i}.b"] = rng.uniform(-0.2, 0.2, DIMS[i + 1])
    model.set_weights(w)
    return model


def torch_net(weights):
    """The same MLP in torch (logits out; the softmax is inside F.cross_entropy)."""
    mods, linears = [], []
    for i, act in enumerate(ACTS):
        lin = torch.nn.Linear(DIMS[i], DIMS[i + 1]).double()
        with torch.no_grad():
            lin.weight.copy_(t64(weights[f"{i}.W"].T))
            lin.bias.copy_(t64(weights[f"{i}.b"]))
        mods.append(lin)
        linears.append(lin)
        if act == "relu":
            mods.append(torch.nn.ReLU())
        elif act == "tanh":
            mods.append(torch.nn.Tanh())
    return torch.nn.Sequential(*mods), linears


def torch_weights(linears):
    out = {}
    for i, lin in enumerate(linears):
        out[f"{i}.W"] = lin.weight.detach().numpy().T.copy()
        out[f"{i}.b"] = lin.bias.detach().numpy().copy()
    return out


def torch_train(net, opt, X, y, epochs, bs=BS):
    Xt, yt = t64(X), torch.from_numpy(np.asarray(y, dtype=np.int64))
    steps = 0
    for _ in range(epochs):
        for start in range(0, len(X), bs):
            opt.zero_grad()
            F.cross_entropy(net(Xt[start:start + bs]), yt[start:start + bs]).backward()
            opt.step()
            steps += 1
    return steps


def assert_weights_close(got, want, w0, rtol=RTOL):
    for key, value in want.items():
        # the weights really moved (a vacuous comparison would pass on a no-op optimizer)
        assert np.max(np.abs(value - w0[key])) > 1e-3, key
        err = np.max(np.abs(got[key] - value)) / np.max(np.abs(value))
        assert err < rtol, f"{key}: relative difference {err:.3g}"


# (fastnn optimizer, torch optimizer factory): the same update rule, step for step
LR = 0.05
CASES = {
    "sgd": (lambda: fn.optim.SGD(LR), lambda p: torch.optim.SGD(p, lr=LR)),
    # the course's Momentum(lr=a, beta=b) is SGD(momentum=b, dampening=0, lr=a(1-b)) exactly
    "momentum": (lambda: fn.optim.Momentum(0.3, beta=0.9),
                 lambda p: torch.optim.SGD(p, lr=0.3 * (1 - 0.9), momentum=0.9, dampening=0)),
    "rmsprop": (lambda: fn.optim.RMSprop(0.002, beta2=0.95, eps=1e-7),
                lambda p: torch.optim.RMSprop(p, lr=0.002, alpha=0.95, eps=1e-7)),
    "adam": (lambda: fn.optim.Adam(0.005, beta1=0.85, beta2=0.995, eps=1e-7),
             lambda p: torch.optim.Adam(p, lr=0.005, betas=(0.85, 0.995), eps=1e-7)),
    "adamw": (lambda: fn.optim.AdamW(0.005, weight_decay=0.3),
              lambda p: torch.optim.AdamW(p, lr=0.005, weight_decay=0.3)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_trainer_100_steps_match_torch_optim(name, data):
    """The user's path: Trainer.fit (shuffle=False, so the batches are rows in order, the last
    one smaller) against a torch training loop over the same batches."""
    X, y = data
    make_fn, make_torch = CASES[name]
    model = make_model()
    w0 = model.get_weights()
    net, linears = torch_net(w0)
    trainer = fn.Trainer(model, optimizer=make_fn(), batch_size=BS, shuffle=False)
    trainer.fit(X, y, epochs=EPOCHS, progress=False)
    steps = torch_train(net, make_torch(net.parameters()), X, y, EPOCHS)
    assert steps == trainer.step == trainer.optimizer.state["step"] == 100
    assert_weights_close(model.get_weights(), torch_weights(linears), w0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_on_dicts_100_steps_match_torch_optim(name, data):
    """The course's path: loss_and_grads + opt.step(params, grads) on a dict of arrays; the
    gradients themselves are compared with autograd at every step."""
    X, y = data
    make_fn, make_torch = CASES[name]
    model = make_model(seed=5)
    w0 = model.get_weights()
    net, linears = torch_net(w0)
    topt = make_torch(net.parameters())
    opt = make_fn()
    params = {k: v.copy() for k, v in w0.items()}
    Xt, yt = t64(X), torch.from_numpy(y.astype(np.int64))
    rng = np.random.default_rng(9)
    for step in range(100):
        idx = np.sort(rng.choice(N, size=BS, replace=False))  # any batches: the same ones
        model.set_weights(params)
        _, grads = model.loss_and_grads(X[idx], y[idx])
        opt.step(params, grads)
        topt.zero_grad()
        F.cross_entropy(net(Xt[idx]), yt[idx]).backward()
        if step in (0, 99):
            tgrads = {f"{i}.W": lin.weight.grad.numpy().T for i, lin in enumerate(linears)}
            for key, tg in tgrads.items():
                np.testing.assert_allclose(grads[key], tg, rtol=1e-10, atol=1e-14)
        topt.step()
    assert opt.state["step"] == 100
    assert_weights_close(params, torch_weights(linears), w0)


def test_momentum_state_is_torch_buffer_scaled(data):
    """Momentum's v (course form) is (1 - beta) times torch's momentum_buffer."""
    X, y = data
    beta = 0.9
    model = make_model()
    w0 = model.get_weights()
    net, linears = torch_net(w0)
    topt = torch.optim.SGD(net.parameters(), lr=0.3 * (1 - beta), momentum=beta, dampening=0)
    trainer = fn.Trainer(model, optimizer=fn.optim.Momentum(0.3, beta=beta), batch_size=BS,
                         shuffle=False)
    trainer.fit(X, y, epochs=2, progress=False)
    torch_train(net, topt, X, y, 2)
    v = trainer.optimizer.state["exp_avg"]
    for i, lin in enumerate(linears):
        buf = topt.state[lin.weight]["momentum_buffer"].numpy().T
        np.testing.assert_allclose(v[f"{i}.W"], (1 - beta) * buf, rtol=1e-9, atol=1e-15)


def test_adam_state_matches_torch(data):
    X, y = data
    model = make_model()
    w0 = model.get_weights()
    net, linears = torch_net(w0)
    topt = torch.optim.Adam(net.parameters(), lr=0.01)
    trainer = fn.Trainer(model, optimizer=fn.optim.Adam(0.01), batch_size=BS, shuffle=False)
    trainer.fit(X, y, epochs=3, progress=False)
    torch_train(net, topt, X, y, 3)
    st = trainer.optimizer.state
    for i, lin in enumerate(linears):
        tstate = topt.state[lin.bias]
        assert int(tstate["step"]) == st["step"] == 15
        np.testing.assert_allclose(st["exp_avg"][f"{i}.b"], tstate["exp_avg"].numpy(),
                                   rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(st["exp_avg_sq"][f"{i}.b"], tstate["exp_avg_sq"].numpy(),
                                   rtol=1e-9, atol=1e-18)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_l2_is_coupled_weight_decay_lambda_over_n(name, data):
    """Trainer(l2=lam) adds (lam/N) W to dW each step (W only, not b): torch's coupled
    weight_decay=lam/N on the weights' parameter group."""
    X, y = data
    lam = 3.0
    model = make_model()
    w0 = model.get_weights()
    net, linears = torch_net(w0)
    groups = [{"params": [l.weight for l in linears], "weight_decay": lam / N},
              {"params": [l.bias for l in linears], "weight_decay": 0.0}]
    if name == "sgd":
        fopt, topt = fn.optim.SGD(LR), torch.optim.SGD(groups, lr=LR)
    elif name == "momentum":
        fopt = fn.optim.Momentum(0.3, beta=0.8)
        topt = torch.optim.SGD(groups, lr=0.3 * (1 - 0.8), momentum=0.8, dampening=0)
    else:
        fopt, topt = fn.optim.Adam(0.005), torch.optim.Adam(groups, lr=0.005)
    trainer = fn.Trainer(model, optimizer=fopt, l2=lam, batch_size=BS, shuffle=False)
    history = trainer.fit(X, y, epochs=EPOCHS, progress=False)
    # the torch loop also records the training objective: J + lam/(2N) sum ||W||^2 per step,
    # averaged over the epoch's examples, as history["loss"] reports it
    Xt, yt = t64(X), torch.from_numpy(y.astype(np.int64))
    epoch_costs = []
    for _ in range(EPOCHS):
        total = 0.0
        for start in range(0, N, BS):
            topt.zero_grad()
            loss = F.cross_entropy(net(Xt[start:start + BS]), yt[start:start + BS])
            loss.backward()
            w2 = sum(float((l.weight.detach() ** 2).sum()) for l in linears)
            total += (loss.item() + lam / (2 * N) * w2) * len(Xt[start:start + BS])
            topt.step()
        epoch_costs.append(total / N)
    want = torch_weights(linears)
    assert_weights_close(model.get_weights(), want, w0)
    np.testing.assert_allclose(history["loss"], epoch_costs, rtol=1e-10)
    # without the decay the weights end somewhere measurably different
    plain = make_model()
    config = {k: v for k, v in fopt.get_config().items() if k != "name"}
    fn.Trainer(plain, optimizer=type(fopt)(**config), batch_size=BS, shuffle=False).fit(
        X, y, epochs=EPOCHS, progress=False)
    assert np.max(np.abs(plain.get_weights()["0.W"] - want["0.W"])) > 1e-4


def test_exponential_decay_schedule_matches_torch_scheduler(data):
    X, y = data
    model = make_model()
    w0 = model.get_weights()
    net, linears = torch_net(w0)
    topt = torch.optim.SGD(net.parameters(), lr=0.2)
    sched = torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.8)
    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.2),
                         schedule=fn.schedules.ExponentialDecay(rate=0.8), batch_size=BS,
                         shuffle=False)
    history = trainer.fit(X, y, epochs=EPOCHS, progress=False)
    lrs = []
    for _ in range(EPOCHS):
        lrs.append(topt.param_groups[0]["lr"])
        torch_train(net, topt, X, y, 1)
        sched.step()
    np.testing.assert_allclose(history["lr"], lrs, rtol=1e-14)
    assert_weights_close(model.get_weights(), torch_weights(linears), w0)


# ---- batch norm ---------------------------------------------------------------------------------

BN_MOMENTUM = 0.8


def bn_model(rng, n_in=6, hidden=12, units=8, k=3):
    model = fn.MLP(n_in, [fn.Dense(hidden, "tanh"),
                          fn.Dense(units, "relu", batch_norm=True, bn_momentum=BN_MOMENTUM),
                          fn.Dense(k, "softmax")], dtype="float64", seed=11)
    w = model.get_weights()
    w["0.b"] = rng.uniform(-0.3, 0.3, hidden)
    w["1.gamma"] = rng.uniform(0.5, 1.5, units)
    w["1.beta"] = rng.uniform(-0.5, 0.5, units)
    w["1.running_mean"] = rng.standard_normal(units) * 0.3
    w["1.running_var"] = rng.uniform(0.5, 2.0, units)
    model.set_weights(w)
    return model


def torch_bn_net(w):
    n_in, hidden = w["0.W"].shape
    units, k = w["2.W"].shape
    l0 = torch.nn.Linear(n_in, hidden).double()
    l1 = torch.nn.Linear(hidden, units, bias=False).double()
    bn = torch.nn.BatchNorm1d(units, momentum=1 - BN_MOMENTUM, eps=1e-5).double()
    l2 = torch.nn.Linear(units, k).double()
    with torch.no_grad():
        l0.weight.copy_(t64(w["0.W"].T))
        l0.bias.copy_(t64(w["0.b"]))
        l1.weight.copy_(t64(w["1.W"].T))
        bn.weight.copy_(t64(w["1.gamma"]))
        bn.bias.copy_(t64(w["1.beta"]))
        bn.running_mean.copy_(t64(w["1.running_mean"]))
        bn.running_var.copy_(t64(w["1.running_var"]))
        l2.weight.copy_(t64(w["2.W"].T))
        l2.bias.copy_(t64(w["2.b"]))
    net = torch.nn.Sequential(l0, torch.nn.Tanh(), l1, bn, torch.nn.ReLU(), l2)
    return net, (l0, l1, bn, l2)


def test_batchnorm_forward_train_and_eval_match_torch():
    rng = np.random.default_rng(1)
    model = bn_model(rng)
    X = rng.standard_normal((24, 6)) * 2 + 0.5
    w = model.get_weights()
    net, (_, _, bn, _) = torch_bn_net(w)
    net.eval()
    with torch.no_grad():
        want_eval = torch.softmax(net(t64(X)), dim=1).numpy()
    np.testing.assert_allclose(model.forward(X), want_eval, rtol=1e-12, atol=1e-15)
    # training mode: batch statistics, and the running averages move the same way
    net.train()
    with torch.no_grad():
        want_train = torch.softmax(net(t64(X)), dim=1).numpy()
    got_train = model.forward(X, training=True)
    assert np.max(np.abs(want_train - want_eval)) > 1e-3   # the two modes really differ
    np.testing.assert_allclose(got_train, want_train, rtol=1e-12, atol=1e-15)
    after = model.get_weights()
    np.testing.assert_allclose(after["1.running_mean"], bn.running_mean.numpy(), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(after["1.running_var"], bn.running_var.numpy(), rtol=1e-12)


def test_batchnorm_gradients_match_autograd():
    """dgamma, dbeta and every other gradient; dW0 carries the gradient through the batch-norm
    input back into the layer below."""
    rng = np.random.default_rng(2)
    model = bn_model(rng)
    X = rng.standard_normal((30, 6))
    y = rng.integers(0, 3, 30)
    w = model.get_weights()
    net, (l0, l1, bn, l2) = torch_bn_net(w)
    cost, grads = model.loss_and_grads(X, y, training=True)
    net.train()
    loss = F.cross_entropy(net(t64(X)), torch.from_numpy(y.astype(np.int64)))
    loss.backward()
    assert cost == pytest.approx(loss.item(), rel=1e-13)
    want = {"0.W": l0.weight.grad.numpy().T, "0.b": l0.bias.grad.numpy(),
            "1.W": l1.weight.grad.numpy().T, "1.gamma": bn.weight.grad.numpy(),
            "1.beta": bn.bias.grad.numpy(), "2.W": l2.weight.grad.numpy().T,
            "2.b": l2.bias.grad.numpy()}
    assert set(grads) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(grads[key], value, rtol=1e-10, atol=1e-14, err_msg=key)


def test_batchnorm_input_gradient_matches_autograd():
    """With X = I (one-hot rows), dW of a first batch-norm layer *is* the gradient with respect
    to the batch-norm input Z = X W, which autograd gives directly."""
    rng = np.random.default_rng(3)
    m, units = 16, 7
    model = fn.MLP(m, [fn.Dense(units, "tanh", batch_norm=True, bn_momentum=BN_MOMENTUM),
                       fn.Dense(4, "softmax")], dtype="float64", seed=4)
    w = model.get_weights()
    w["0.gamma"] = rng.uniform(0.5, 1.5, units)
    w["0.beta"] = rng.uniform(-0.5, 0.5, units)
    model.set_weights(w)
    X = np.eye(m)
    y = rng.integers(0, 4, m)
    _, grads = model.loss_and_grads(X, y, training=True)
    Z = t64(w["0.W"]).requires_grad_(True)          # Z = I @ W
    bn = torch.nn.BatchNorm1d(units, momentum=1 - BN_MOMENTUM, eps=1e-5).double()
    with torch.no_grad():
        bn.weight.copy_(t64(w["0.gamma"]))
        bn.bias.copy_(t64(w["0.beta"]))
    logits = torch.tanh(bn(Z)) @ t64(w["1.W"]) + t64(w["1.b"])
    F.cross_entropy(logits, torch.from_numpy(y.astype(np.int64))).backward()
    np.testing.assert_allclose(grads["0.W"], Z.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(grads["0.gamma"], bn.weight.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(grads["0.beta"], bn.bias.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_batchnorm_running_stats_after_20_training_steps():
    """Trainer with SGD (shuffle off; a last smaller batch each epoch) against a torch loop:
    weights, gamma, beta and running mean/variance (unbiased batch variance) after 20 steps."""
    rng = np.random.default_rng(4)
    model = bn_model(rng)
    n, bs = 45, 10                                        # 4 x 10 + 5: 5 steps per epoch
    X = rng.standard_normal((n, 6)) * 1.5 + 0.7
    y = rng.integers(0, 3, n)
    w0 = model.get_weights()
    net, (l0, l1, bn, l2) = torch_bn_net(w0)
    trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.1), batch_size=bs, shuffle=False)
    trainer.fit(X, y, epochs=4, progress=False)
    assert trainer.step == 20
    net.train()
    topt = torch.optim.SGD(net.parameters(), lr=0.1)
    assert torch_train(net, topt, X, y, 4, bs=bs) == 20
    got = model.get_weights()
    want = {"1.running_mean": bn.running_mean.numpy(), "1.running_var": bn.running_var.numpy(),
            "1.gamma": bn.weight.detach().numpy(), "1.beta": bn.bias.detach().numpy(),
            "1.W": l1.weight.detach().numpy().T, "0.W": l0.weight.detach().numpy().T,
            "2.W": l2.weight.detach().numpy().T}
    for key, value in want.items():
        assert np.max(np.abs(value - w0[key])) > 1e-3, key
        np.testing.assert_allclose(got[key], value, rtol=1e-9, atol=1e-13, err_msg=key)
    # inference afterwards uses those running statistics
    net.eval()
    with torch.no_grad():
        probs = torch.softmax(net(t64(X)), dim=1).numpy()
    np.testing.assert_allclose(model.predict_proba(X), probs, rtol=1e-9, atol=1e-13)
