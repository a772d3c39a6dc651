"""Drop-in nn.Module layers built on hrops ops."""
from .modulated import (ConstantInput, IDWTUpsample, ModulatedConv2d, ModulatedDWConv2d,
                        MultichannelImage, NoiseInjection, StyledConv2d)
from .wavelets import DWTForward, DWTInverse

__all__ = ["ConstantInput", "DWTForward", "DWTInverse", "IDWTUpsample", "ModulatedConv2d",
           "ModulatedDWConv2d", "MultichannelImage", "NoiseInjection", "StyledConv2d"]
