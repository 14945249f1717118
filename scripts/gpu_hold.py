"""Hold all but N GiB of the GPU's free memory until killed: another process on the card, for the GPU runs that
grade beside a neighbour (scripts/c_gpu_oom.py), or that make a larger card hold what an 80 GB one has free.

    python3 scripts/gpu_hold.py 79.6 &      # prints "holding X GiB, leaving 79.6 GiB free", then sleeps
"""

from __future__ import annotations

import sys
import time

import torch


def main() -> None:
    leave = float(sys.argv[1]) * 2**30
    free, _ = torch.cuda.mem_get_info()
    hold = torch.empty(max(0, int(free - leave)), dtype=torch.uint8, device="cuda")
    print(f"holding {hold.numel() / 2**30:.1f} GiB, leaving {torch.cuda.mem_get_info()[0] / 2**30:.1f} GiB free",
          flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
