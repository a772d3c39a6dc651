"""Two-process DistributedDataParallel training (gloo, CPU) of MobileStyleGAN's
synthesis network on hrops layers (python_models.train_ddp) ends with the
parameters that one process reaches on the same global batches."""
import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from python_models import train_ddp

STEPS, BATCH, SIZE = 3, 4, dict(style_dim=32, channels=(32, 32, 16))


def _worker(rank, world, store, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        student, teacher = train_ddp.build(**SIZE)
        train_ddp.train(DistributedDataParallel(student), teacher, STEPS, BATCH, rank, world)
        if rank == 0:
            torch.save(student.state_dict(), out)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built")
def test_two_process_ddp_equals_one_process_on_the_global_batch(tmp_path):
    out = tmp_path / "rank0.pt"
    # spawn: fresh interpreters (no fork of this one's threads); spawn ends
    # both workers when one fails and raises here.
    mp.start_processes(_worker, args=(2, str(tmp_path / "store"), str(out)), nprocs=2,
                       join=True, start_method="spawn")
    student, teacher = train_ddp.build(**SIZE)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    train_ddp.train(student, teacher, STEPS, BATCH)
    ddp = torch.load(out, weights_only=True)
    moved = 0
    for name, want in student.state_dict().items():
        torch.testing.assert_close(ddp[name], want, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(want, before[name])
    assert moved > len(before) // 2  # the steps changed the weights


def test_train_rejects_a_batch_that_does_not_split():
    student, teacher = train_ddp.build(**SIZE)
    with pytest.raises(ValueError, match="multiple of the process count"):
        train_ddp.train(student, teacher, 1, 3, rank=0, world=2)
