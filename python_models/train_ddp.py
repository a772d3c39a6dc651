"""Data-parallel training of MobileStyleGAN's synthesis network on hrops
layers with torch.distributed: DistributedDataParallel, gloo on CPUs, nccl
on GPUs (one process per GPU). Each step distils a global batch of styles
from a frozen teacher (the same network with other weights), as
MobileStyleGAN distils StyleGAN2 (Belousov 2021, Sec. 3.3; here its L1 terms
on the image and on every resolution's wavelet image alone); every process takes an equal slice of the batch, and DDP's
gradient average makes the step the one a single process takes on the whole
batch.

    torchrun --nproc_per_node=2 -m python_models.train_ddp --steps 5 --batch 8
"""
import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .mobilestylegan import MobileSynthesisNetwork


def build(style_dim=64, channels=(64, 64, 32), seed=0, device="cpu"):
    """(student, teacher): two synthesis networks, the teacher frozen; the
    same weights in every process for the same seed."""
    torch.manual_seed(seed)
    student = MobileSynthesisNetwork(style_dim, list(channels)).to(device)
    teacher = MobileSynthesisNetwork(style_dim, list(channels)).to(device).requires_grad_(False)
    return student, teacher.eval()


def global_batch(step, batch, style_dim, seed, device):
    """The styles of `step` (every process draws the same batch) and the fixed
    noise of the step."""
    gen = torch.Generator().manual_seed(seed * 1000003 + step)
    return torch.randn(batch, style_dim, generator=gen).to(device), gen


def train(student, teacher, steps, batch, rank=0, world=1, lr=0.01, seed=0):
    """`steps` SGD steps of student (a DDP module when world > 1) on this
    process's slice of each global batch; returns the losses."""
    net = student.module if isinstance(student, DistributedDataParallel) else student
    device = next(net.parameters()).device
    if batch % world:
        raise ValueError(f"batch {batch} must be a multiple of the process count {world}")
    opt = torch.optim.SGD(student.parameters(), lr=lr)
    part = batch // world
    losses = []
    for step in range(steps):
        w, gen = global_batch(step, batch, net.style_dim, seed, device)
        noise = [n.to(device) for n in net.make_noise(gen)]
        w = w[rank * part:(rank + 1) * part]
        with torch.no_grad():
            target = teacher(w, noise=noise)
        out = student(w, noise=noise)
        loss = sum((o - t).abs().mean() for o, t in zip([out["img"], *out["freq"]],
                                                        [target["img"], *target["freq"]]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8, help="global batch, split over processes")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(device)
    try:
        student, teacher = build(seed=args.seed, device=device)
        ddp = DistributedDataParallel(student, device_ids=[device] if cuda else None)
        losses = train(ddp, teacher, args.steps, args.batch, rank, world, args.lr, args.seed)
        if rank == 0:
            print(f"{world} processes, global batch {args.batch}: rank 0's loss per step "
                  + " ".join(f"{v:.4f}" for v in losses))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
