"""Drop-in nn.Module layers built on hrops ops."""
from .conv_gru import SepConvGRU
from .modulated import (ConstantInput, IDWTUpsample, ModulatedConv2d, ModulatedDWConv2d,
                        MultichannelImage, NoiseInjection, StyledConv2d, fuse_demodulation)
from .recurrent import LSTU, STU, load_bluestyle97_stu
from .region import ACE, RegionAvgPool, RegionBroadcast
from .wavelets import DWTForward, DWTInverse

__all__ = ["ACE", "ConstantInput", "DWTForward", "DWTInverse", "IDWTUpsample", "LSTU",
           "ModulatedConv2d", "ModulatedDWConv2d", "MultichannelImage", "NoiseInjection",
           "RegionAvgPool", "RegionBroadcast", "STU", "SepConvGRU", "StyledConv2d",
           "fuse_demodulation", "load_bluestyle97_stu"]
