"""What torch.compile costs and saves in a final retrain (training.final_compile), per network.

Each network is retrained for `--epochs` epochs eagerly and through torch.compile (as the final
retrain does it: accelerator.run_compiled around the trainer), from the same weights and seed. The
script prints the CPU seconds of the first epoch (compiling happens there) and of the later epochs,
the graphs compiled (torch._dynamo's unique_graphs: one per module mode and batch shape that needed
its own), the compile cost per graph, and after how many epochs compiling would pay for itself.

Inductor compiles in worker processes by default, whose CPU time this process would not see:
TORCHINDUCTOR_COMPILE_THREADS=1 is set before torch is imported, so the compiling runs here, and the
C++ compiler it starts is counted through RUSAGE_CHILDREN (CPU seconds = this process + its finished
children). Inductor's on-disk cache starts empty (a fresh TORCHINDUCTOR_CACHE_DIR): every network is
compiled for the first time, as a searched one is.

    python benchmarks/performance/compile_final.py                 # several minutes on 2 cores
    python benchmarks/performance/compile_final.py --epochs 3 --networks resnet

On a GPU run it with --device cuda (wall seconds between synchronisations instead of CPU seconds).
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
# A cold cache, as for a network never compiled before (inductor keeps compiled graphs on disk).
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="nasforge-inductor-"))

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nasforge.data import load_dataset  # noqa: E402
from nasforge.data.batches import TensorBatches  # noqa: E402
from nasforge.evaluate.accelerator import place, run_compiled  # noqa: E402
from nasforge.evaluate.tasks import Task  # noqa: E402
from nasforge.evaluate.trainer import TrainingOptions, train_batches  # noqa: E402
from nasforge.space import LayerGraphSpace, LayerSpaceOptions  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from gpu_throughput import Clock, resnetish, synthetic  # noqa: E402


class CpuClock(Clock):
    """CPU seconds of this process and of the children it waited for (the C++ compiler inductor runs)."""

    def now(self) -> float:
        if self.device.type == "cuda":
            return super().now()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime


def workloads(names: list[str]) -> list[tuple[str, torch.nn.Module, torch.Tensor, torch.Tensor]]:
    out = []
    if "resnet" in names:
        x, y = synthetic(512)
        out.append(("ResNet-ish w16, 512 x 3x32x32", resnetish(16, 1), x, y))
    if "digits" in names:
        data = load_dataset("digits")
        space = LayerGraphSpace(data.input_shape, data.num_classes, LayerSpaceOptions(min_blocks=2, max_blocks=4))
        rng = np.random.default_rng(1)
        for i in range(2):
            torch.manual_seed(i)
            model = space.build(space.sample(rng))
            out.append((f"digits candidate #{i + 1} ({sum(p.numel() for p in model.parameters()):,} params)", model,
                        data.x_train, data.y_train))
    return out


def retrain(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, device: torch.device,
            compiled: bool) -> tuple[list[float], float, bool]:
    """Seconds of each epoch, total wall seconds, and whether the compiled run went through."""
    clock = CpuClock(device)
    run = place(model, device)
    marks = [clock.now()]
    options = TrainingOptions(epochs=epochs, batch_size=64)

    def fit(net: torch.nn.Module) -> None:
        train_batches(net, TensorBatches(x, y, 64, device, seed=5), options, 5, Task("classification", 10),
                      on_epoch=lambda *_: marks.append(clock.now()), run=run)

    wall = time.perf_counter()
    ok = run_compiled(model, fit) if compiled else (fit(model) or True)
    return [b - a for a, b in zip(marks, marks[1:])], time.perf_counter() - wall, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--networks", nargs="+", default=["resnet", "digits"], choices=["resnet", "digits"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    unit = "wall s" if device.type == "cuda" else "CPU s"
    print(f"torch {torch.__version__} on {device}; {args.epochs} epochs, batch 64; {unit}; "
          f"TORCHINDUCTOR_COMPILE_THREADS={os.environ['TORCHINDUCTOR_COMPILE_THREADS']}; load {os.getloadavg()[0]:.1f}")
    print(f"{'network':<40} {'eager 1st':>9} {'eager next':>10} {'comp. 1st':>9} {'comp. next':>10} {'graphs':>6} "
          f"{'s/graph':>8} {'pays off after':>15} {'wall eager/comp.':>17}")
    for name, model, x, y in workloads(args.networks):
        state = {k: v.clone() for k, v in model.state_dict().items()}
        eager, eager_wall, _ = retrain(model, x, y, args.epochs, device, compiled=False)
        model.load_state_dict(state)
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        comp, comp_wall, ok = retrain(model, x, y, args.epochs, device, compiled=True)
        graphs = int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
        e_next, c_next = statistics.mean(eager[1:]), statistics.mean(comp[1:])
        cost = comp[0] - eager[0]
        saving = e_next - c_next
        pays = f"{cost / saving:.0f} epochs" if saving > 0 else "never"
        print(f"{name:<40} {eager[0]:>9.2f} {e_next:>10.2f} {comp[0]:>9.2f} {c_next:>10.2f} {graphs:>6} "
              f"{cost / max(graphs, 1):>8.1f} {pays:>15} {eager_wall:>8.1f}/{comp_wall:<8.1f}{'' if ok else ' (fell back to eager)'}",
              flush=True)
    print(f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
