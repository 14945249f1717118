"""What the scorecard records about the machine: device, driver and library versions."""

from __future__ import annotations

import importlib.metadata
import platform


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe() -> dict[str, object]:
    """Device name, CUDA driver and library versions (torch is imported; call after the tests ran)."""
    import torch

    env: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "bitsandbytes": _version("bitsandbytes"),
        "transformers": _version("transformers"),
        "peft": _version("peft"),
        # CPU results depend on it (the order of a parallel reduction); OMP_NUM_THREADS sets it (grader.batch.threads).
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["device"] = props.name
        env["compute_capability"] = f"{props.major}.{props.minor}"
        env["cuda"] = torch.version.cuda
        env["driver"] = _nvidia_driver()
    else:
        env["device"] = f"cpu ({platform.processor() or platform.machine()}); Triton interpreter"
    return env


def _nvidia_driver() -> str | None:
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None
