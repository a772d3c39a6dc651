"""Drop-in nn.Module layers built on hrops ops."""
from .modulated import (ConstantInput, IDWTUpsample, ModulatedConv2d, ModulatedDWConv2d,
                        MultichannelImage, NoiseInjection, StyledConv2d)
from .recurrent import LSTU, STU, load_bluestyle97_stu
from .region import ACE, RegionAvgPool, RegionBroadcast
from .wavelets import DWTForward, DWTInverse

__all__ = ["ACE", "LSTU", "STU", "load_bluestyle97_stu", "ConstantInput", "DWTForward", "DWTInverse", "IDWTUpsample", "ModulatedConv2d",
           "ModulatedDWConv2d", "MultichannelImage", "NoiseInjection", "RegionAvgPool",
           "RegionBroadcast", "StyledConv2d"]
