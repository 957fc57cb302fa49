#!/usr/bin/env python3
"""Cross-checks clnorm's .npy/.npz I/O and `clnorm run` against NumPy. Optional: the Maven tests
do not need Python; this is for a machine that has NumPy.

  scripts/numpy-crosscheck.py fixtures DIR   # (re)writes the NumPy-made test fixtures the Java tests read
  scripts/numpy-crosscheck.py run [CMD...]   # runs `clnorm run` (default: scripts/clnorm) on NumPy-made
                                             # inputs and checks every output against a float64 NumPy
                                             # batch norm (2e-4 absolute, PyTorch's CPU-vs-GPU bound,
                                             # for float32 results; 1e-11 for float64 ones)

Exit code 0 when everything agrees, 1 otherwise.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np


def fixtures(d):
    os.makedirs(d, exist_ok=True)
    save = lambda name, a: np.save(os.path.join(d, name), a)
    save("f32_2x3.npy", (np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(0.5) - np.float32(1)))
    # float16 specials: 0, -0, 1, max, smallest subnormal, inf, -inf, 0.1 (rounded), -2
    save("f16_specials.npy", np.array([0.0, -0.0, 1.0, 65504.0, 2.0 ** -24, np.inf, -np.inf, 0.1, -2.0],
                                      dtype=np.float16))
    save("f64_2x3x4.npy", np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7.0)
    save("i8_scalar.npy", np.int64(123456789012))
    save("f32_0x3.npy", np.zeros((0, 3), dtype=np.float32))
    save("f32_rank5.npy", (np.arange(2 * 1 * 3 * 2 * 2, dtype=np.float32) - 5).reshape(2, 1, 3, 2, 2))
    save("f32_bigendian.npy", (np.arange(4) + 0.25).astype(">f4"))
    save("f32_fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    save("i4.npy", np.arange(3, dtype=np.int32))
    np.savez(os.path.join(d, "savez.npz"), a=np.arange(3, dtype=np.float32), n=np.int64(5))
    np.savez_compressed(os.path.join(d, "savez_compressed.npz"), a=np.arange(3, dtype=np.float32),
                        n=np.int64(5))
    # A PyTorch BatchNorm2d(4) state_dict as numpy arrays (what people save with np.savez(**{k: v.numpy()})).
    np.savez(os.path.join(d, "torch_state.npz"),
             weight=np.array([1.0, 0.5, 2.0, -1.0], np.float32), bias=np.array([0.0, 0.1, -0.2, 0.3], np.float32),
             running_mean=np.array([0.25, -0.5, 1.0, 2.0], np.float32),
             running_var=np.array([1.0, 0.75, 3.0, 0.125], np.float32), num_batches_tracked=np.int64(7))
    print("wrote fixtures to", d)
    return 0


def reference(x, gamma, beta, rm, rv, eps, axis):
    """float64 batch norm, per channel on `axis`; returns y, mean, biased var, unbiased var."""
    axes = tuple(i for i in range(x.ndim) if i != axis)
    bshape = [1] * x.ndim
    bshape[axis] = -1
    x = x.astype(np.float64)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    m = x.size // x.shape[axis]
    unbiased = var * m / (m - 1)
    xhat = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + eps)
    y = gamma.reshape(bshape) * xhat + beta.reshape(bshape)
    return y, mean, var, unbiased, xhat, axes, bshape, m


def run(cmd):
    rng = np.random.default_rng(1)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for layout, shape, axis in (("nchw", (6, 4, 5, 3), 1), ("nhwc", (6, 5, 3, 4), 3), ("nchw", (16, 3), 1)):
            c = shape[axis]
            for dtype in (np.float32, np.float16, np.float64):
                x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
                dy = rng.standard_normal(shape).astype(dtype)
                g = (rng.random(c) + 0.5).astype(np.float32)
                b = rng.standard_normal(c).astype(np.float32)
                rm = rng.standard_normal(c).astype(np.float32)
                rv = (rng.random(c) + 0.5).astype(np.float32)
                for name, a in (("x", x), ("dy", dy), ("g", g), ("b", b), ("m", rm), ("v", rv)):
                    np.save(os.path.join(tmp, name + ".npy"), a)
                for convention, eps, mom in (("pytorch", 1e-5, 0.1), ("keras", 1e-3, 0.99), ("onnx", 1e-5, 0.9),
                                             ("cudnn", 1e-5, 0.1)):
                    for mode in ("train", "eval", "backward"):
                        out = os.path.join(tmp, "out")
                        args = cmd + ["run", "--mode", mode, "--x", os.path.join(tmp, "x.npy"),
                                      "--gamma", os.path.join(tmp, "g.npy"), "--beta", os.path.join(tmp, "b.npy"),
                                      "--running-mean", os.path.join(tmp, "m.npy"),
                                      "--running-var", os.path.join(tmp, "v.npy"), "--convention", convention,
                                      "--layout", layout, "--out", out]
                        if mode == "backward":
                            args += ["--dy", os.path.join(tmp, "dy.npy")]
                        p = subprocess.run(args, capture_output=True, text=True)
                        label = f"{mode} {convention} {layout} {shape} {np.dtype(dtype).name}"
                        if p.returncode != 0:
                            print("FAIL", label, p.stderr.strip())
                            failures += 1
                            continue
                        # float64 input runs in float64 where the device has double precision (--dtype auto);
                        # everything else computes on the float32 values of the input.
                        wide = "computed in float64" in p.stdout
                        out_type, tol = (np.float64, 1e-11) if wide else (np.float32, 2e-4)
                        xf = x.astype(np.float64) if wide else x.astype(np.float32).astype(np.float64)
                        y, mean, var, unb, xhat, axes, bshape, m = reference(xf, g.astype(np.float64),
                                                                             b.astype(np.float64), rm, rv, eps, axis)
                        expect = {}
                        if mode == "eval":
                            expect["y"] = (g.reshape(bshape) * (xf - rm.reshape(bshape))
                                           / np.sqrt(rv.reshape(bshape).astype(np.float64) + eps) + b.reshape(bshape))
                        else:
                            f = 1 - mom if convention in ("keras", "onnx") else mom
                            fed = var if convention in ("keras", "onnx") else unb
                            rm64, rv64 = rm.astype(np.float64), rv.astype(np.float64)  # NumPy keeps float32 * f float32
                            expect.update(y=y, batch_mean=mean, batch_var=var, running_mean=(1 - f) * rm64 + f * mean,
                                          running_var=(1 - f) * rv64 + f * fed)
                            if mode == "backward":
                                dyf = dy.astype(np.float64) if wide else dy.astype(np.float32).astype(np.float64)
                                dbeta = dyf.sum(axis=axes)
                                dgamma = (dyf * xhat).sum(axis=axes)
                                invstd = 1 / np.sqrt(var + eps)
                                dx = ((g * invstd).reshape(bshape) / m
                                      * (m * dyf - dbeta.reshape(bshape) - xhat * dgamma.reshape(bshape)))
                                expect.update(dx=dx, dgamma=dgamma, dbeta=dbeta)
                        written = sorted(f[:-4] for f in os.listdir(out))
                        if written != sorted(expect):
                            print("FAIL", label, "wrote", written, "expected", sorted(expect))
                            failures += 1
                        for k, v in expect.items():
                            got = np.load(os.path.join(out, k + ".npy"))
                            err = np.max(np.abs(got.astype(np.float64) - v)) if v.size else 0.0
                            if got.dtype != out_type or got.shape != v.shape or not err <= tol:
                                print("FAIL", label, k, got.dtype, got.shape, "max |error|", err)
                                failures += 1
                        for f in os.listdir(out):
                            os.remove(os.path.join(out, f))
    print(f"{failures} failures" if failures else "clnorm run agrees with NumPy (float64) on every case")
    return 1 if failures else 0


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if len(sys.argv) >= 3 and sys.argv[1] == "fixtures":
        return fixtures(sys.argv[2])
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        return run(sys.argv[2:] or [os.path.join(root, "scripts", "clnorm")])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
