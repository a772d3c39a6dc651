"""Choosing the hrops kernels of a whole model at once."""


def use_impl(model, impl):
    """Runs every hrops op of `model` with `impl` ("auto", "ref", "cpu", ...):
    sets the `impl` attribute of each submodule that has one."""
    for m in model.modules():
        if hasattr(m, "impl"):
            m.impl = impl
    return model
