"""Pure-PyTorch reference implementations: the oracle every kernel is tested
against. They follow the math of the original repositories (each module cites
its source file) directly and are never changed to match a kernel.

hrops.ref exports the names in each module's __all__: a new op's reference
module is found without a list here."""
import importlib as _importlib
import pkgutil as _pkgutil

__all__ = []
for _module in _pkgutil.iter_modules(__path__):
    _names = _importlib.import_module(f"{__name__}.{_module.name}").__all__
    globals().update({n: getattr(globals()[_module.name], n) for n in _names})
    __all__ += _names
