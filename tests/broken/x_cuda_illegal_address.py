"""Broken: fails as a kernel with an out-of-bounds access does on a GPU. Raised here as torch reports it, so the
verdict can be checked on a CPU; on a GPU the real fault also poisons the CUDA context, which is why every puzzle
is graded in its own worker process (python -m grader.batch)."""


def dequantize_nf4(weight, quant_state):
    raise RuntimeError("CUDA error: an illegal memory access was encountered\n"
                       "CUDA kernel errors might be asynchronously reported at some other API call")
