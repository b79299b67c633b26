"""The fused network kernels (forward; forward + loss + backward) against fastnn.reference."""

from fastnn import reference as ref

from .common import batch, layer_specs, make_model


class Forward:
    """Inference forward pass of the 784-512-256-10 network on one batch."""
    params = (["fastnn", "reference"], [32, 128, 512], ["float32", "float64"])
    param_names = ["impl", "batch_size", "dtype"]

    def setup(self, impl, batch_size, dtype):
        self.model = make_model(dtype=dtype)
        self.params_ = self.model.get_weights()
        self.layers = layer_specs(self.model)
        self.X, _ = batch(batch_size, dtype)
        self.model.forward(self.X)

    def time_forward(self, impl, batch_size, dtype):
        if impl == "fastnn":
            self.model.forward(self.X)
        else:
            ref.mlp_forward(self.params_, self.layers, self.X)


class LossAndGrads:
    """Forward, softmax cross-entropy and backward of the whole network on one batch."""
    params = (["fastnn", "reference"], [32, 128, 512], ["float32", "float64"],
              ["plain", "dropout"])
    param_names = ["impl", "batch_size", "dtype", "variant"]

    def setup(self, impl, batch_size, dtype, variant):
        self.model = make_model(dtype=dtype, variant=variant)
        self.params_ = self.model.get_weights()
        self.layers = layer_specs(self.model)
        self.X, self.y = batch(batch_size, dtype)
        self.masks = None
        if variant == "dropout":
            self.masks = ref.mlp_dropout_masks(self.layers, batch_size, seed=0, step=0)
        self.model.loss_and_grads(self.X, self.y, training=True)

    def time_loss_and_grads(self, impl, batch_size, dtype, variant):
        if impl == "fastnn":
            self.model.loss_and_grads(self.X, self.y, training=True)
        else:
            ref.mlp_loss_and_grads(self.params_, self.layers, self.X, self.y,
                                   masks=self.masks, training=True)


class BatchNormLayer:
    """Loss and gradients of 784 -> 512 (batch norm, ReLU) -> 10 on one batch, training mode."""
    params = (["fastnn", "reference"], [128, 512], ["float32", "float64"])
    param_names = ["impl", "batch_size", "dtype"]

    def setup(self, impl, batch_size, dtype):
        try:
            self.model = make_model((512,), dtype, "batchnorm")
        except (NotImplementedError, ValueError, TypeError) as exc:
            raise NotImplementedError(f"batch norm is not supported: {exc}")
        self.params_ = self.model.get_weights()
        self.layers = layer_specs(self.model)
        self.X, self.y = batch(batch_size, dtype)
        self.model.loss_and_grads(self.X, self.y, training=True)

    def time_loss_and_grads(self, impl, batch_size, dtype):
        if impl == "fastnn":
            self.model.loss_and_grads(self.X, self.y, training=True)
        else:
            ref.mlp_loss_and_grads(self.params_, self.layers, self.X, self.y, training=True)
