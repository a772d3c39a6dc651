"""Functional ops: argument checks, implementation choice, custom ops with
autograd and fake implementations."""
from .haar import haar_dwt, haar_idwt, haar_idwt_bands

__all__ = ["haar_dwt", "haar_idwt", "haar_idwt_bands"]
