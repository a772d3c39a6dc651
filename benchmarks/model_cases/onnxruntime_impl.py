"""An impl running a model exported by hrops.export.to_onnx in onnxruntime
(CPU), next to the PyTorch rows of a model case. The export happens on the
first call (the harness's correctness check); a session is made per thread
count (intra-op threads = torch's count). Its peak memory is not reported:
onnxruntime's arena keeps its buffers between runs, out of the RSS rise the
harness measures (without the arena it ran 1.6x slower)."""
import tempfile

import torch

from hrops.bench.harness import Impl


def onnxruntime_impl(model, device):
    if device.type != "cpu":
        return Impl.missing("the onnxruntime rows run on the CPU")
    try:
        import onnxruntime
    except ImportError:
        return Impl.missing("onnxruntime is not installed (pip install '.[export]')")
    state = {"sessions": {}}

    def call(*inputs):
        if "path" not in state:
            import hrops.export
            state["dir"] = tempfile.TemporaryDirectory()
            state["path"] = f"{state['dir'].name}/model.onnx"
            hrops.export.to_onnx(model, inputs, state["path"])
        threads = torch.get_num_threads()
        if threads not in state["sessions"]:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            state["sessions"][threads] = onnxruntime.InferenceSession(
                state["path"], options, providers=["CPUExecutionProvider"])
        session = state["sessions"][threads]
        feeds = {i.name: x.detach().numpy() for i, x in zip(session.get_inputs(), inputs)}
        return torch.from_numpy(session.run(None, feeds)[0])
    return Impl(call, memory_measured=False)
