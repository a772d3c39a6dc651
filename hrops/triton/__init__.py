"""Triton kernels. Imported lazily (hrops.ops loads a module on first use) so
that TRITON_INTERPRET=1 set by a test harness takes effect before @triton.jit
runs. On CPU tensors they work only under the interpreter."""
