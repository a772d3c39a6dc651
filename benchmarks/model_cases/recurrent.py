"""LSTU and STU cells, fp32, at CooGAN-256's last level (neuralchen/CooGAN,
components/STU/SRU_modify_relu.py and train_config/train_256.yaml):
batch 8, encoder feature 32 ch @128^2, state 64 ch @64^2 plus 13 attributes
(also the STU with BatchNorms in training, `stu_bn_cell`, at that size);
and CoCosNet v2's SepConvGRU (hidden 32, input 64, batch 2 at 128^2 and
256^2; microsoft/CoCosNet-v2 models/networks/convgru.py, SepConvGRU), whose
"saved" column is the issue's memory target.

Baselines: the original cells' eager computation (separate gate
convolutions, plain PyTorch gating, as CooGAN's SRU_modify and STGAN's
ConvGRUCell compute it; python_models.original_cells), torch.compile of
it, and the same eager cell on channels-last inputs. hrops: hrops.nn.LSTU /
hrops.nn.STU with the same weights, in the convolution layout it picks for
this machine, and in the other one as its own row (hrops(channels_last) or
hrops(contiguous)), so the choice is visible. The floor is
not memory bandwidth but the convolutions, so none is given (the issue's
figure for the convolutions alone: ~71 / ~214 ms fwd / fwd+bwd for LSTU).
"""
import copy

import torch

import hrops
from hrops.bench.harness import Case, Impl, compiled

SIZES = {"default": [(8, 32, 64, 128, 13)], "quick": [(2, 8, 8, 16, 3)]}
GRU_SIZES = {"default": [128, 256], "quick": [16]}


def cases(quick=False):
    key = "quick" if quick else "default"
    return ([_case(kind, *s) for s in SIZES[key] for kind in ("lstu", "stu")]
            + [_bn_case(*s) for s in SIZES[key]]
            + [_gru_case(hw) for hw in GRU_SIZES[key]])


def _bn_case(n, d, c_prev, hw, attrs):
    """bluestyle97/STGAN-pytorch's STU (models/stgan.py, ConvGRUCell: BatchNorm
    after each gate convolution) in training, batch statistics: hrops'
    ConvGRUCell (hrops::stu_bn_cell) against the original module."""
    from python_models.stgan_pytorch import ConvGRUCell
    from python_models.stgan_pytorch_original import ConvGRUCell as OriginalConvGRUCell

    modules = {}

    def impls(device, dtype):
        if device not in modules:
            torch.manual_seed(0)
            original = OriginalConvGRUCell(attrs, d, d).to(device, dtype).train()
            ours = ConvGRUCell(attrs, d, d).to(device, dtype).train()
            ours.load_state_dict(original.state_dict())
            modules[device] = original, ours
        original, ours = modules[device]
        return {"hrops": Impl(ours), "ref": Impl(original), "compile(ref)": compiled(original)}

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn(n, d, hw, hw, generator=gen, device=device, dtype=dtype),
                torch.randn(n, 2 * d, hw // 2, hw // 2, generator=gen, device=device,
                            dtype=dtype),
                torch.randint(-1, 2, (n, attrs), generator=gen, device=device).to(dtype))

    return Case("stu_bn_cell", f"B{n}x{d}@{hw}^2,state{2 * d}+{attrs},train", make_inputs, impls,
                fwd_bytes=None, bwd_bytes=0, tolerance=dict(scaled_atol=2e-5, rtol=1e-4))


def _gru_case(hw, n=2, hidden=32, inp=64):
    from python_models.original_cells import OriginalSepConvGRU

    modules = {}

    def impls(device, dtype):
        if device not in modules:
            torch.manual_seed(0)
            original = OriginalSepConvGRU(hidden, inp).to(device, dtype)
            ours = hrops.nn.SepConvGRU(hidden, inp).to(device, dtype)
            ours.load_state_dict(original.state_dict())
            modules[device] = original, ours
        original, ours = modules[device]
        return {"hrops": Impl(ours), "ref": Impl(original), "compile(ref)": compiled(original)}

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn(n, hidden, hw, hw, generator=gen, device=device, dtype=dtype),
                torch.randn(n, inp, hw, hw, generator=gen, device=device, dtype=dtype))

    return Case("sepconv_gru", f"B{n}xh{hidden}+x{inp}@{hw}^2", make_inputs, impls,
                fwd_bytes=None, bwd_bytes=0, tolerance=dict(scaled_atol=2e-5, rtol=1e-4))


def _case(kind, n, d, c_prev, hw, attrs):
    from python_models.original_cells import OriginalLSTU, OriginalSTU

    modules = {}

    def pair(device):
        if device not in modules:
            torch.manual_seed(0)
            if kind == "lstu":
                original = OriginalLSTU(d, c_prev + attrs, "relu").to(device)
                ours = hrops.nn.LSTU(d, c_prev + attrs, "relu").to(device)
            else:
                original = OriginalSTU(d, c_prev + attrs).to(device)
                ours = hrops.nn.STU(d, c_prev + attrs).to(device)
            original.export_to(ours)
            other = copy.deepcopy(ours)
            channels_last = hrops.nn.recurrent.conv_channels_last("auto", torch.device(device))
            other.conv_layout = "contiguous" if channels_last else "channels_last"
            modules[device] = original, ours, other
        return modules[device]

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn(n, d, hw, hw, generator=gen, device=device, dtype=dtype),
                torch.randn(n, c_prev, hw // 2, hw // 2, generator=gen, device=device, dtype=dtype),
                torch.randint(-1, 2, (n, attrs), generator=gen, device=device).to(dtype))

    def impls(device, dtype):
        original, ours, other = pair(device)
        return {"hrops": Impl(ours), f"hrops({other.conv_layout})": Impl(other),
                "ref": Impl(original), "compile(ref)": compiled(original),
                "ref(channels_last)": Impl(_channels_last_run(original))}
    return Case(f"{kind}_cell", f"B{n}x{d}@{hw}^2,state{c_prev}+{attrs}", make_inputs, impls,
                fwd_bytes=None, bwd_bytes=0, tolerance=dict(scaled_atol=2e-5, rtol=1e-4))


def _channels_last_run(original):
    """The original cell on channels-last inputs (conversion included):
    oneDNN's NHWC convolutions, which hrops' cells use inside, without the
    fused gating."""
    cl = torch.channels_last
    original = copy.deepcopy(original).to(memory_format=cl)

    def run(enc, state, attr):
        return original(enc.contiguous(memory_format=cl), state.contiguous(memory_format=cl), attr)
    return run
