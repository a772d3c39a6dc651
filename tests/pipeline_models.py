"""Small, randomly initialised versions of every model in python_models with
their inputs, shared by the pipeline tests (autocast, torch.compile, export):
name -> build() returning (model, inputs); model(*inputs) returns one image
tensor."""
import torch
from torch import nn

from python_models import cocosnet_v2, mobilestylegan, s2fgan
from python_models.coogan import CooGAN
from python_models.sean import SEANGenerator
from python_models.stgan import STGANGenerator
from region_cases import blob_labels, onehot


def randomize(module, seed=0, scale=0.3):
    """Random values in every parameter; buffers (constant filters, derived
    scales) keep theirs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))
    return module


class _Image(nn.Module):
    """model's image output alone, for models that return more."""

    def __init__(self, model, pick):
        super().__init__()
        self.model, self.pick = model, pick

    def forward(self, *inputs):
        return self.pick(self.model(*inputs))


class MobileStyleGANSynthesis(nn.Module):
    """MobileStyleGAN's synthesis network on fixed noise: w (N, style_dim) ->
    image."""

    def __init__(self, net, noise):
        super().__init__()
        self.net = net
        for i, n in enumerate(noise):
            self.register_buffer(f"noise{i}", n)

    def forward(self, w):
        noise = [getattr(self, f"noise{i}") for i in range(len(self.net.layers) + 1)]
        return self.net(w, noise=noise)["img"]


def mobilestylegan_synthesis(style_dim=32, channels=(32, 32, 16)):
    torch.manual_seed(0)  # buffers (style_inv) come from the initialisation
    net = randomize(mobilestylegan.MobileSynthesisNetwork(style_dim, list(channels)), scale=0.1)
    model = MobileStyleGANSynthesis(net, net.make_noise(torch.Generator().manual_seed(1)))
    return model.eval(), (torch.randn(2, style_dim, generator=torch.Generator().manual_seed(2)),)


def s2fgan_decoder(style_dim=32, channels=(32, 32, 16, 8)):
    torch.manual_seed(0)
    model = s2fgan.Generator(style_dim, channels=list(channels)).eval()
    return model, (torch.randn(2, style_dim, generator=torch.Generator().manual_seed(2)),)


def sean_generator():
    torch.manual_seed(0)  # SEAN's own initialisation (init_weights)
    model = SEANGenerator(label_nc=5, ngf=4, crop_size=64, style_length=16).eval()
    seg = onehot(blob_labels(2, 64, 64, 5, unlabelled=False), 5)
    style = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    return model, (seg, style)


def cocosnet_v2_correspondence():
    torch.manual_seed(0)
    model = _Image(cocosnet_v2.NoVGGHPMCorrespondence(3, 8).eval(), lambda c: c.warps[-1])
    seg = onehot(blob_labels(1, 32, 32, 3, unlabelled=False), 3)
    ref_img = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    return model.eval(), (ref_img, seg, seg.flip(-1))


def stgan_generator(cell="stu"):
    torch.manual_seed(0)
    model = STGANGenerator(dim=4, n_attrs=5, cell=cell).eval()
    return model, (torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)),
                   torch.tensor([[1., -1, 0, 0, 1], [0, 1, 0, -1, 0]]))


class CooGANEdit(nn.Module):
    """CooGAN's patch-wise high-resolution edit as a module."""

    def __init__(self, coogan):
        super().__init__()
        self.coogan = coogan

    def forward(self, image, attr_diff):
        return self.coogan.edit(image, attr_diff)


def coogan_edit():
    torch.manual_seed(0)
    model = CooGANEdit(CooGAN(dim=4, global_dim=4, n_attrs=5, snapshot_size=32, patch=32))
    _, (image, attr_diff) = stgan_generator()
    return model.eval(), (image, attr_diff)


MODELS = {
    "mobilestylegan": mobilestylegan_synthesis,
    "s2fgan": s2fgan_decoder,
    "sean": sean_generator,
    "cocosnet_v2": cocosnet_v2_correspondence,
    "stgan": stgan_generator,
    "coogan": coogan_edit,
}
