"""How an hrops op is declared: the one module that calls torch.library.

kernel_op(name, ...) defines hrops::<name>, a custom op with:
  * the schema of its compiled kernel hrops_C::<name>, which the kernel's C++
    file declares (the one place it is written), plus a last `str impl`
    argument: the implementation that runs ("cpu", "cuda" or "triton";
    hrops._backends resolves it), carried in every eager call, compiled graph
    and exported program;
  * a body that calls <name> of that implementation: torch.ops.hrops_C.<name>
    for "cpu" and "cuda", <name> of the op's Triton module for "triton", or a
    Python function given in `overrides`;
  * its fake (meta) function, and its autograd: `backward` with `setup`.
A backward that is itself an op is named _<op>_backward and is declared the
same way; no_double_backward(op) is the autograd of one that has none.

composite_op(name, fn, ...) defines hrops::<name> from a Python function that
composes other ops (a whole recurrent cell, for example) and has no kernel of
its own; its schema comes from fn's type annotations, and fn also serves as
its fake function unless one is given. Intermediate tensors its backward
needs are extra outputs, marked non-differentiable by `setup`.

The "ref" implementation is plain PyTorch (hrops.ref) called by the public
functions, never through an op. Without the compiled library (hrops._C) no
op is defined (kernel_op returns None) and every public function uses "ref".
"""
import importlib
import re

import torch

from .. import _backends


def kernel_schema(name):
    """hrops_C::<name>'s argument list and returns, with `str impl` appended
    and its ints symbolic (as custom_op makes a Python int, so that sizes
    traced by torch.compile pass): '(Tensor x, SymInt k, str impl) -> Tensor'."""
    schema = str(getattr(torch.ops.hrops_C, name).default._schema)
    args, returns = schema[schema.index("(") + 1:].split(") -> ", 1)
    args = re.sub(r"\bint\b", "SymInt", args)
    return f"({args + ', ' if args else ''}str impl) -> {returns}"


def _kernel_body(name, triton, overrides):
    def body(*args):
        impl = args[-1]
        if impl in overrides:
            kernel = overrides[impl]
        elif impl == "triton" and triton is not None:
            kernel = getattr(importlib.import_module(triton), name)
        else:
            kernel = getattr(torch.ops.hrops_C, name)
        out = kernel(*args[:-1])
        return tuple(out) if isinstance(out, list) else out
    return body


def _register(op, fake, backward, setup):
    op.register_fake(fake)
    if backward is not None:
        op.register_autograd(backward, setup_context=setup or (lambda ctx, inputs, output: None))
    return op


def kernel_op(name, *, fake, backward=None, setup=None, triton=None, overrides=None):
    """hrops::<name> over the kernel hrops_C::<name> (see the module doc).
    triton: the module holding the Triton <name> (imported at its first call);
    overrides: {impl: function} for implementations that are not a kernel of
    that name."""
    if not _backends.HAS_CPU_KERNELS:
        return None
    op = torch.library.custom_op(f"hrops::{name}", _kernel_body(name, triton, overrides or {}),
                                 mutates_args=(), schema=kernel_schema(name))
    return _register(op, fake, backward, setup)


def composite_op(name, fn, *, fake=None, backward=None, setup=None):
    """hrops::<name> whose body is fn (annotated; its last argument is impl)."""
    if not _backends.HAS_CPU_KERNELS:
        return None
    return _register(torch.library.custom_op(f"hrops::{name}", fn, mutates_args=()), fake or fn,
                     backward, setup)


def no_double_backward(op):
    """The autograd of a backward op without one of its own."""
    def backward(ctx, *grads):
        raise RuntimeError(f"hrops.{op} does not support double backward; use impl='ref' where "
                           "second derivatives are needed")
    return backward
