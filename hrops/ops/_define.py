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
  * its fake (meta) function, and its autograd: `backward` with `setup`;
  * its rule under torch.autocast (`autocast`, see AUTOCAST_RULES),
    registered for the AutocastCPU and AutocastCUDA dispatch keys as
    torch.library's register_autocast does, and applied by call_ref to the
    "ref" implementation, so that every implementation returns the same dtype.
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
import contextlib
import importlib
import re

import torch

from .. import _backends

# How an op runs inside a torch.autocast region (CPU: bfloat16; CUDA: float16
# or bfloat16), as ATen sorts its own ops: its floating-point tensor inputs on
# the autocast device, except float64 ones, are cast to
#   "lower_precision": the region's dtype (torch.get_autocast_dtype), like
#       convolutions and matmuls; the kernels accumulate in float32;
#   "float32": float32, like ATen's reductions and losses (means over
#       regions, the softmax-weighted PatchMatch sums);
# then the op runs with autocast off. Backward ops have no rule: autograd
# runs them on the dtypes of the forward. Neither has an op whose tensors are
# all integers (region_classes).
AUTOCAST_RULES = ("lower_precision", "float32")
_autocast_rules = {}  # op name -> rule; filled without the compiled library too
_autocast_lib = torch.library.Library("hrops", "FRAGMENT")


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
        guard = contextlib.nullcontext()
        if impl in overrides:
            kernel = overrides[impl]
        elif impl == "triton" and triton is not None:
            kernel = getattr(importlib.import_module(triton), name)
            device = next(a.device for a in args if isinstance(a, torch.Tensor))
            if device.type == "cuda":
                # Triton launches on the current device; the C++ kernels
                # carry their own CUDAGuard.
                guard = torch.cuda.device(device)
        else:
            kernel = getattr(torch.ops.hrops_C, name)
        with guard:
            out = kernel(*args[:-1])
        return tuple(out) if isinstance(out, list) else out
    return body


def _cast(value, device_type, dtype):
    if isinstance(value, torch.Tensor):
        eligible = (value.is_floating_point() and value.device.type == device_type
                    and value.dtype != torch.float64)
        return value.to(dtype) if eligible else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, device_type, dtype) for v in value)
    return value


def _autocast_dtype(rule, device_type):
    return torch.get_autocast_dtype(device_type) if rule == "lower_precision" else torch.float32


def _set_autocast_rule(name, rule):
    if rule is not None and rule not in AUTOCAST_RULES:
        raise ValueError(f"hrops::{name}: autocast must be None or one of {AUTOCAST_RULES}, "
                         f"got {rule!r}")
    _autocast_rules[name] = rule


def autocast_rule(name):
    """The autocast rule of op `name` (None for backward ops and region_classes)."""
    return _autocast_rules[name]


def _register_autocast(op, name, rule):
    overload = getattr(torch.ops.hrops, name).default
    for device_type in ("cpu", "cuda"):
        key = "Autocast" + torch._C._dispatch_key_for_device(device_type)
        # The guard torch.library.register_autocast uses: the op below runs
        # with this device's autocast off, whatever it calls.
        exclude = torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, key))

        def kernel(_keyset, *args, device_type=device_type, exclude=exclude):
            args = _cast(args, device_type, _autocast_dtype(rule, device_type))
            with torch._C._ExcludeDispatchKeyGuard(exclude):
                return overload(*args)
        _autocast_lib.impl(name, kernel, key, with_keyset=True)


def call_ref(name, fn, *args):
    """fn(*args), the reference of op `name`, under that op's autocast rule:
    inside an autocast region its inputs are cast as the op's kernels' are,
    and fn runs with autocast off (its ATen ops would otherwise pick their
    own dtypes)."""
    rule = _autocast_rules[name]
    if rule is None:
        return fn(*args)
    for a in args:  # a loop, not next(generator): this runs per call on small tensors too
        if isinstance(a, torch.Tensor):
            device_type = a.device.type
            break
    if not torch.is_autocast_enabled(device_type):
        return fn(*args)
    args = _cast(args, device_type, _autocast_dtype(rule, device_type))
    with torch.autocast(device_type, enabled=False):
        return fn(*args)


def _register(op, name, fake, backward, setup):
    op.register_fake(fake)
    if backward is not None:
        op.register_autograd(backward, setup_context=setup or (lambda ctx, inputs, output: None))
    if _autocast_rules[name] is not None:
        _register_autocast(op, name, _autocast_rules[name])
    return op


def kernel_op(name, *, fake, autocast, backward=None, setup=None, triton=None, overrides=None):
    """hrops::<name> over the kernel hrops_C::<name> (see the module doc).
    autocast: one of AUTOCAST_RULES, or None (a backward op; integer inputs);
    triton: the module holding the Triton <name> (imported at its first call);
    overrides: {impl: function} for implementations that are not a kernel of
    that name."""
    _set_autocast_rule(name, autocast)
    if not _backends.HAS_CPU_KERNELS:
        return None
    op = torch.library.custom_op(f"hrops::{name}", _kernel_body(name, triton, overrides or {}),
                                 mutates_args=(), schema=kernel_schema(name))
    return _register(op, name, fake, backward, setup)


def composite_op(name, fn, *, autocast, fake=None, backward=None, setup=None):
    """hrops::<name> whose body is fn (annotated; its last argument is impl)."""
    _set_autocast_rule(name, autocast)
    if not _backends.HAS_CPU_KERNELS:
        return None
    return _register(torch.library.custom_op(f"hrops::{name}", fn, mutates_args=()), name,
                     fake or fn, backward, setup)


def no_double_backward(op):
    """The autograd of a backward op without one of its own."""
    def backward(ctx, *grads):
        raise RuntimeError(f"hrops.{op} does not support double backward; use impl='ref' where "
                           "second derivatives are needed")
    return backward
