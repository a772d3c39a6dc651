"""Drop-in nn.Module layers built on hrops ops."""
from .wavelets import DWTForward, DWTInverse

__all__ = ["DWTForward", "DWTInverse"]
