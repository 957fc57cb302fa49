#!/usr/bin/env python3
"""Times PyTorch's batch norm on the shapes `scripts/clnorm bench` uses and writes the same JSON fields,
so that `scripts/clnorm bench --compare torch.json` prints both side by side with the ratio.

For machines that have PyTorch (e.g. a GPU node); clnorm itself needs no Python. Example:

  python3 scripts/bench-torch.py --device cuda --out torch.json
  scripts/clnorm bench --compare torch.json

Operations (the bench's names), all on a (N, C, ...) channels-first float32 tensor:
  train_forward  F.batch_norm(training=True): batch statistics, running statistics updated
  inference      F.batch_norm(training=False): running statistics
  backward       autograd backward of the training forward (torch.autograd.grad for x, weight, bias);
                 only the backward is timed, the forward runs once beforehand
  train_step     training forward + backward
Each timed call is followed by torch.cuda.synchronize() on a GPU. median_ms, p10_ms and p90_ms are
wall times of call + synchronize (perf_counter), as clnorm's median_ms is; kernel_median_ms is the
GPU time between two CUDA events around the call (like clnorm's kernel ms from OpenCL profiling
events). gbps uses clnorm's minimum-traffic model: 12 (train_forward), 8 (inference), 12 (backward)
and 24 (train_step) bytes per element, over median_ms.

Exit code: 0 on success, 2 for bad arguments or when PyTorch (or the requested device) is missing.
"""
import argparse
import json
import platform
import statistics
import sys
import time

BYTES_PER_ELEMENT = {"train_forward": 12, "inference": 8, "backward": 12, "train_step": 24}

# The default shape set of `scripts/clnorm bench` (BenchRunner.defaultShapes).
DEFAULT_SHAPES = "32x64x112x112,32x256x56x56,32x512x28x28,32x1024x14x14,32x2048x7x7,20x6x65536,4096x1024,128x1024,32x64"


def parse_shapes(text):
    shapes = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            dims = [int(d) for d in part.split("x")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"shape '{part}' has a non-numeric dimension; use e.g. 32x64x56x56")
        if len(dims) < 2 or len(dims) > 5:
            raise argparse.ArgumentTypeError(f"shape '{part}' should have 2 to 5 dimensions, e.g. 32x64x56x56")
        if any(d <= 0 for d in dims):
            raise argparse.ArgumentTypeError(f"shape '{part}' has a non-positive dimension")
        shapes.append(dims)
    if not shapes:
        raise argparse.ArgumentTypeError("no shapes given")
    return shapes


def parse_ops(text):
    ops = [o.strip() for o in text.split(",") if o.strip()]
    for o in ops:
        if o not in BYTES_PER_ELEMENT:
            raise argparse.ArgumentTypeError(f"unknown op '{o}'; use {', '.join(BYTES_PER_ELEMENT)}")
    return ops


def quantile(sorted_values, q):
    """Linear interpolation between closest ranks, as clnorm's Samples.quantile."""
    pos = q * (len(sorted_values) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=parse_shapes, default=parse_shapes(DEFAULT_SHAPES),
                        help="comma-separated shapes like 32x64x112x112,4096x1024 (default: clnorm bench's set)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="where to run (default cuda)")
    parser.add_argument("--ops", type=parse_ops, default=list(BYTES_PER_ELEMENT),
                        help="comma-separated subset of " + ",".join(BYTES_PER_ELEMENT))
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls (default 10)")
    parser.add_argument("--out", default="torch.json", help="JSON file to write (default torch.json)")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.repeats < 1:
        parser.error("--warmup must be >= 0 and --repeats >= 1")

    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"bench-torch.py: PyTorch is not installed for {sys.executable} ({e}); install it "
              f"(https://pytorch.org/get-started/locally/) or run this on a machine that has it", file=sys.stderr)
        return 2

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench-torch.py: --device cuda, but torch.cuda.is_available() is False "
              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); use --device cpu", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        device_id = f"torch-cuda:{torch.cuda.current_device()}"
        device_name = torch.cuda.get_device_name(device)
    else:
        device_id = "torch-cpu"
        device_name = f"{cpu_model()} ({torch.get_num_threads()} threads)"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def measure(fn):
        for _ in range(args.warmup):
            fn()
        sync()
        wall, events = [], []
        for _ in range(args.repeats):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                t0 = time.perf_counter()
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                wall.append((time.perf_counter() - t0) * 1e3)
                events.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                wall.append((time.perf_counter() - t0) * 1e3)
        return sorted(wall), sorted(events) if events else None

    results = []
    for shape in args.shapes:
        c = shape[1]
        elements = 1
        for d in shape:
            elements *= d
        label = "x".join(map(str, shape))
        try:
            gen = torch.Generator(device="cpu").manual_seed(12345)
            x = (torch.rand(shape, generator=gen) * 4 - 1).to(device)
            dy = (torch.rand(shape, generator=gen) * 2 - 1).to(device)
            weight = torch.ones(c, device=device)
            bias = torch.zeros(c, device=device)
            running_mean = torch.zeros(c, device=device)
            running_var = torch.ones(c, device=device)
            xg = x.clone().requires_grad_(True)
            wg = weight.clone().requires_grad_(True)
            bg = bias.clone().requires_grad_(True)

            def train_forward():
                with torch.no_grad():
                    F.batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.1, eps=1e-5)

            def inference():
                with torch.no_grad():
                    F.batch_norm(x, running_mean, running_var, weight, bias, training=False, momentum=0.1, eps=1e-5)

            y_graph = F.batch_norm(xg, running_mean, running_var, wg, bg, training=True, momentum=0.1, eps=1e-5)

            def backward():
                # grad() returns dx, dweight, dbias without accumulating into .grad (no extra pass);
                # retain_graph keeps the forward's saved statistics for the next repetition.
                torch.autograd.grad(y_graph, (xg, wg, bg), dy, retain_graph=True)

            def train_step():
                y = F.batch_norm(xg, running_mean, running_var, wg, bg, training=True, momentum=0.1, eps=1e-5)
                torch.autograd.grad(y, (xg, wg, bg), dy)

            fns = {"train_forward": train_forward, "inference": inference, "backward": backward,
                   "train_step": train_step}
            for op in args.ops:
                print(f"{device_id} {label} {op}", file=sys.stderr, flush=True)
                wall, events = measure(fns[op])
                median = statistics.median(wall)
                results.append({
                    "device": device_id, "device_name": device_name, "shape": shape,
                    "layout": "CHANNELS_FIRST", "op": op, "elements": elements,
                    "median_ms": median, "p10_ms": quantile(wall, 0.1), "p90_ms": quantile(wall, 0.9),
                    "kernel_median_ms": statistics.median(events) if events else None,
                    "gbps": BYTES_PER_ELEMENT[op] * elements / (median * 1e6),
                })
            del x, dy, xg, y_graph
        except RuntimeError as e:  # out of memory and the like: say so and go on with the next shape
            if "out of memory" not in str(e).lower():
                raise
            print(f"bench-torch.py: skipped {label} on {device_id}: {e}", file=sys.stderr)
            if cuda:
                torch.cuda.empty_cache()

    header = {"tool": "scripts/bench-torch.py", "torch_version": torch.__version__,
              "cuda_version": torch.version.cuda, "warmup": args.warmup, "repeats": args.repeats}
    with open(args.out, "w", encoding="utf-8") as f:  # one result per line, like clnorm bench --json
        f.write("{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in header.items()))
        f.write('  "results": [\n' + ",\n".join("    " + json.dumps(r) for r in results) + "\n  ]\n}\n")
    print(f"{len(results)} results written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
