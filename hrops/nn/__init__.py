"""Drop-in nn.Module layers built on hrops ops."""
from .wavelets import DWTForward, DWTInverse
from .region import ACE, RegionAvgPool, RegionBroadcast

__all__ = ["DWTForward", "DWTInverse",
           "ACE", "RegionAvgPool", "RegionBroadcast"]
