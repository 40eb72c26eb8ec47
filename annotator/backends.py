"""CPU inference backends for the heavy passes: exported ONNX graphs run by OpenVINO or ONNX Runtime.

On a CPU, PyTorch's eager kernels leave much of the hardware unused for SAM's image encoder and
CLIP's dense pass: measured on 2 cores (MobileSAM's encoder, 1×3×1024×1024), torch 1.73 s,
ONNX Runtime 0.82 s, OpenVINO 0.67 s, all float32 and within 3e-6 of torch.  So these passes
are exported once with ``torch.onnx.export`` from the real weights and run by a CPU runtime:

- **export**: on first use, into ``<checkpoints>/exported/<name>-<weights sha256>-<exporter>.onnx``
  (temp file + rename). The key holds the sha256 of the module's weights (its ``state_dict``,
  so a fine-tuned checkpoint or another CLIP gets its own graph), torch's version and
  :data:`EXPORTER_VERSION` (bumped whenever the exported code changes); nothing is downloaded.
- **precision** (:data:`PRECISIONS`): every compiled graph states it. ``f32`` is float32 on
  every CPU: OpenVINO's CPU plugin otherwise infers in bf16 by default where the CPU has AMX or
  AVX-512 BF16, so ``INFERENCE_PRECISION_HINT`` is always set. ``bf16`` is OpenVINO's bf16
  inference (AMX / AVX-512 BF16); ``int8`` an NNCF-quantized graph (:func:`quantize_int8`) with
  the rest of it in f32. ``auto`` is resolved per graph by :func:`plan_precisions`: bf16 first
  where the CPU has bf16 instructions and the graph's owner has measured that bf16 costs it
  nothing (``auto_bf16``), f32 after it.
- **check**: once per graph, runtime version, precision and CPU, the runtime's output on a fixed
  input is compared with torch's with the tolerance of the precision (:data:`CHECKS`). The
  outcome, passed or failed, is kept beside the graph (``.json``) with the graph file's size and
  time stamp, so later starts neither export nor check again: a passed graph only compiles, a
  failed one is refused at once (:class:`BackendError`, saying what failed) and ``auto`` moves
  on to the next precision. Delete the graph to export and check it again.
- **run**: :class:`CompiledGraph` takes and returns float32 numpy arrays; OpenVINO keeps one
  infer request per thread, ONNX Runtime's sessions are thread-safe.

torch stays the path on CUDA (:func:`resolve_backend`).

Measured on an Intel Xeon with AMX (2 cores, OpenVINO 2026.4; docs/benchmarks.md):
MobileSAM's encoder f32 0.38 s, bf16 0.16 s (relative L2 error 0.019 on the check input);
RN50's dense pass at 480×672 f32 0.24 s, bf16 0.044 s (0.0035). int8 (opt-in, MobileSAM's
encoder): 0.38 s instead of 0.67 s on an AMD EPYC; on the first 20 ``coco_tiny_val`` photos box
mIoU 71.71 (float32: 71.71), point mIoU 48.54 (float32: 49.12).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import platform
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoints import checkpoints_dir
from .fileio import atomic_write_json

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "openvino", "onnxruntime")
CPU_RUNTIMES = ("openvino", "onnxruntime")  # by preference: OpenVINO measured fastest here
PRECISIONS = ("auto", "f32", "bf16", "int8")
EXPORTER_VERSION = 1  # part of every cache key: bump when an exported module's code changes
INT8_VERSION = 1  # part of an int8 graph's key: bump when the quantization recipe changes
OPSET = 17
CHECKS: dict[str, tuple[str, float]] = {
    # precision -> (metric, the most it may be): max_abs = max |runtime - torch| / max |torch|;
    # relative_l2 = ||runtime - torch|| / ||torch||. bf16 keeps 8 mantissa bits (2^-8 ≈ 0.004 a
    # rounding); measured: MobileSAM's encoder 0.019, RN50's dense pass 0.0035, int8 MobileSAM 0.09.
    "f32": ("max_abs", 1e-3),
    "bf16": ("relative_l2", 0.05),
    "int8": ("relative_l2", 0.2),
}


class BackendError(RuntimeError):
    """A backend cannot run a graph: runtime missing, export failed, or output differs from torch."""


def runtime_available(backend: str) -> bool:
    """Whether the Python package of a CPU runtime (``openvino``, ``onnxruntime``) is installed."""
    return importlib.util.find_spec(backend) is not None


def resolve_backend(backend: str, device: str) -> str:
    """The backend to use for ``backend`` on ``device``.

    ``auto`` is torch on CUDA and, on a CPU, the first installed of :data:`CPU_RUNTIMES`
    (torch when neither is).

    Args:
        backend: one of :data:`BACKENDS`.
        device: the torch device string the models run on (``cpu``, ``cuda``, ``cuda:1``).
    Raises:
        ValueError: an unknown backend, a CPU runtime asked for on CUDA, or one not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    on_cuda = device.startswith("cuda")
    if backend == "auto":
        if on_cuda:
            return "torch"
        return next((b for b in CPU_RUNTIMES if runtime_available(b)), "torch")
    if backend != "torch":
        if on_cuda:
            raise ValueError(f"--backend {backend} runs on the CPU; on CUDA use --backend torch (or auto)")
        if not runtime_available(backend):
            raise ValueError(f"--backend {backend} needs its package: pip install {backend}")
    return backend


# ---------------------------------------------------------------------------- the CPU
def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) of the first CPU in ``/proc/cpuinfo`` (Linux); ``("", set())`` elsewhere."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (``Intel(R) Xeon(R) Processor``), from ``/proc/cpuinfo`` or the platform."""
    return _cpuinfo()[0] or platform.processor() or platform.machine() or "unknown CPU"


@functools.lru_cache(maxsize=1)
def cpu_bf16_features() -> tuple[str, ...]:
    """The CPU's bf16 instruction sets among ``amx_bf16`` and ``avx512_bf16`` (``/proc/cpuinfo``
    flags; on other systems, ``BF16`` in OpenVINO's CPU capabilities gives ``("bf16",)``)."""
    flags = _cpuinfo()[1]
    if flags:
        return tuple(f for f in ("amx_bf16", "avx512_bf16") if f in flags)
    if runtime_available("openvino"):
        import openvino as ov

        if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return ("bf16",)
    return ()


def cpu_summary() -> str:
    """``Intel(R) Xeon(R) Processor, 2 cores, AMX-BF16 + AVX512-BF16`` (or ``no bf16 instructions``)."""
    feats = " + ".join(f.upper().replace("_", "-") for f in cpu_bf16_features()) or "no bf16 instructions"
    return f"{cpu_name()}, {os.cpu_count()} cores, {feats}"


def plan_precisions(precision: str, backend: str, auto_bf16: bool, quantizable: bool = False) -> tuple[str, ...]:
    """The precisions to try for one graph, in order (the first whose check passes runs).

    Args:
        precision: one of :data:`PRECISIONS`, as asked for (``--precision``).
        backend: the resolved backend (``torch``, ``openvino``, ``onnxruntime``).
        auto_bf16: whether the graph's owner measured that bf16 costs it nothing, so ``auto``
            may pick it (SAM's encoder: box / one-click mIoU on COCO; docs/benchmarks.md, "Masks, bf16 against f32").
        quantizable: whether the graph has an int8 recipe (SAM's encoder); others run ``int8``
            requests in f32.
    Returns:
        ``("f32",)``, ``("bf16",)``, ``("int8",)`` or, for ``auto`` on OpenVINO on a CPU with
        bf16 instructions and ``auto_bf16``, ``("bf16", "f32")``. torch is always f32.
    Raises:
        ValueError: an unknown precision, or bf16 / int8 asked for where it cannot run (torch,
            ONNX Runtime, a CPU without bf16 instructions).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "int8" and not quantizable:
        precision = "f32"
    if precision in ("bf16", "int8") and backend != "openvino":
        raise ValueError(f"--precision {precision} runs on OpenVINO on a CPU (--backend openvino), not on {backend}")
    if precision == "bf16" and not cpu_bf16_features():
        raise ValueError(f"--precision bf16 needs AMX or AVX-512 BF16, which this CPU lacks ({cpu_name()})")
    if precision != "auto":
        return (precision,)
    if auto_bf16 and backend == "openvino" and cpu_bf16_features():
        return ("bf16", "f32")
    return ("f32",)


def weights_sha256(module: torch.nn.Module) -> str:
    """Hex sha256 of a module's ``state_dict`` (names, dtypes, shapes and bytes, in order): the
    identity of the weights an exported graph was made from."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def exported_dir() -> Path:
    """Where exported graphs are cached: ``<checkpoints>/exported``."""
    return checkpoints_dir() / "exported"


class CompiledGraph:
    """One exported graph compiled for a CPU runtime at a stated precision; call it with float32
    numpy arrays.

    Args:
        path: the ``.onnx`` file (or, for OpenVINO, an IR ``.xml``).
        backend: ``openvino`` or ``onnxruntime``.
        threads: intra-op threads; ``None`` = the runtime's default (all physical cores).
        precision: ``f32``, ``bf16`` (OpenVINO) or ``int8`` (an OpenVINO int8 IR; its other
            operations in f32). OpenVINO gets it as ``INFERENCE_PRECISION_HINT``, so ``f32`` is
            float32 on every CPU; ONNX Runtime's CPU provider runs f32 graphs in f32.
    Attributes:
        notes: what ran instead of what was asked for, one sentence each (set by
            :func:`compile_module` when an earlier precision's check failed).
    Raises:
        BackendError: the runtime is not installed, cannot run the precision, or cannot compile
            the graph.
    """

    def __init__(self, path: Path, backend: str, threads: int | None = None, precision: str = "f32"):
        if backend not in CPU_RUNTIMES:
            raise BackendError(f"{backend!r} is not a CPU runtime ({', '.join(CPU_RUNTIMES)})")
        if not runtime_available(backend):
            raise BackendError(f"{backend} is not installed: pip install {backend}")
        if precision not in CHECKS:
            raise BackendError(f"a graph runs in one of {', '.join(CHECKS)}, not {precision!r}")
        if precision != "f32" and backend != "openvino":
            raise BackendError(f"{precision} runs on openvino, not {backend}")
        self.path, self.backend, self.threads, self.precision = Path(path), backend, threads, precision
        self.notes: list[str] = []
        self._local = threading.local()
        try:
            if backend == "openvino":
                import openvino as ov

                config = {
                    "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                }
                if threads:
                    config["INFERENCE_NUM_THREADS"] = int(threads)
                self._compiled = ov.Core().compile_model(str(self.path), "CPU", config)
            else:
                import onnxruntime as ort

                options = ort.SessionOptions()
                if threads:
                    options.intra_op_num_threads = int(threads)
                self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
                self._inputs = [i.name for i in self._session.get_inputs()]
        except Exception as exc:  # the runtimes raise their own types
            raise BackendError(f"{backend} cannot compile {self.path.name}: {exc}") from exc

    @property
    def inference_precision(self) -> str:
        """The precision the runtime reports it infers in (OpenVINO's compiled
        ``INFERENCE_PRECISION_HINT``: ``f32`` / ``bf16``); ``f32`` for ONNX Runtime."""
        if self.backend != "openvino":
            return "f32"
        return self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "f32", "bf16"

    def __call__(self, *xs: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run the graph.

        Args:
            xs: the graph's inputs, in order (shapes as exported, float32).
        Returns:
            Its output, a float32 array the caller owns; a tuple of them for a graph with
            several outputs.
        """
        xs = [np.ascontiguousarray(x, dtype=np.float32) for x in xs]
        if self.backend == "onnxruntime":
            outs = self._session.run(None, dict(zip(self._inputs, xs, strict=True)))
        else:
            request = getattr(self._local, "request", None)
            if request is None:  # an infer request is not thread-safe: one per thread
                request = self._local.request = self._compiled.create_infer_request()
            request.infer(dict(enumerate(xs)))
            outs = [request.get_output_tensor(i).data.copy() for i in range(len(self._compiled.outputs))]
        return outs[0] if len(outs) == 1 else tuple(outs)


def _names(n: int, prefix: str) -> list[str]:
    """``input`` / ``output`` for one tensor, ``input0``, ``input1``, ... for several."""
    return [prefix] if n == 1 else [f"{prefix}{i}" for i in range(n)]


def _export(module: torch.nn.Module, example, path: Path, dynamic_axes: dict | None, outputs: int = 1) -> None:
    """``torch.onnx.export`` (TorchScript exporter, opset :data:`OPSET`) into a temp file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation warnings of the exporter
            torch.onnx.export(
                module,
                example if isinstance(example, tuple) else (example,),
                tmp,
                opset_version=OPSET,
                input_names=_names(len(example) if isinstance(example, tuple) else 1, "input"),
                output_names=_names(outputs, "output"),
                dynamic_axes=dynamic_axes,
                dynamo=False,
            )
        os.replace(tmp, path)
    except Exception as exc:
        raise BackendError(f"could not export {path.name}: {type(exc).__name__}: {exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)


def _identity(path: Path) -> dict:
    """What a check was made on: the graph file's name, size and modification time."""
    st = path.stat()
    return {"file": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _check_tag(backend: str, precision: str) -> str:
    """The key of one check: runtime and version, precision, and the CPU (bf16 is the CPU's)."""
    p = f"int8-q{INT8_VERSION}" if precision == "int8" else precision
    feats = "+".join(cpu_bf16_features()) or "no-bf16"
    return f"{backend} {_runtime_version(backend)} {p} on {cpu_name()} ({feats})"


def _read_meta(meta_path: Path) -> dict:
    try:
        return json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _check_error(name: str, backend: str, record: dict) -> str:
    metric, tol = record["metric"], record["tolerance"]
    what = "max |diff| / max |torch|" if metric == "max_abs" else "relative L2"
    return (
        f"{backend} {record['precision']} output of {name} differs from torch by {record['error']:.3g} "
        f"({what}; {record['precision']} allows {tol:g})"
    )


def compile_module(
    module: torch.nn.Module,
    example: torch.Tensor,
    name: str,
    backend: str,
    threads: int | None = None,
    dynamic_axes: dict | None = None,
    cache_dir: Path | None = None,
    precisions: tuple[str, ...] = ("f32",),
    int8_calibration=None,
    check_inputs=None,
    outputs: int = 1,
) -> CompiledGraph:
    """Export ``module`` (once), compile it for ``backend`` at the first of ``precisions`` whose
    check against torch passes (each check made once, see the module doc).

    Args:
        module: a CPU module in eval mode taking float32 tensors and returning ``outputs`` of
            them (a tuple when several).
        example: an input of the exported shape, or a tuple of them (inputs ``input0``, ...);
            its values do not matter (the f32 and bf16 checks use ``check_inputs``, by default
            a seeded random tensor of the same shape).
        name: the graph's name in the cache (``sam-TinyViT``, ...).
        backend: ``openvino`` or ``onnxruntime``.
        threads: intra-op threads (``None`` = all cores).
        dynamic_axes: ``torch.onnx.export``'s, for inputs whose size varies (``input``/``output``).
        cache_dir: default :func:`exported_dir`.
        precisions: from :func:`plan_precisions`, e.g. ``("bf16", "f32")``.
        int8_calibration: a callable returning calibration inputs (a list of float32 arrays of
            the exported shape) for ``int8`` (:func:`quantize_int8`; OpenVINO only); called only
            when the int8 graph is not cached yet. Its first input is the int8 check's input.
        check_inputs: a callable returning the f32 / bf16 check's inputs (a list of float32
            arrays, one per graph input), for graphs whose inputs must be real to mean
            anything (the prompt decoder: an image's embedding); called only to check.
        outputs: how many outputs the module returns (``output0``, ...); the check takes the
            largest error over them.
    Returns:
        The :class:`CompiledGraph`; its ``precision`` is the one that runs and its ``notes`` say
        which earlier precision failed its check, and why.
    Raises:
        BackendError: export or compilation failed, or every precision's output differs from
            torch by more than its tolerance (:data:`CHECKS`; the message says by how much).
    """
    if not precisions:
        raise ValueError("no precision to compile")
    cache_dir = Path(cache_dir or exported_dir())
    key = f"{name}-{weights_sha256(module)[:16]}-torch{torch.__version__.split('+')[0]}-x{EXPORTER_VERSION}"
    path = cache_dir / f"{key}.onnx"
    meta_path = cache_dir / f"{key}.json"
    if not path.is_file():
        t0 = time.perf_counter()
        _export(module, example, path, dynamic_axes, outputs)
        log.info("exported %s in %.1f s", path, time.perf_counter() - t0)
    notes: list[str] = []
    error = None
    for i, precision in enumerate(precisions):
        try:
            graph = _compile_checked(
                module, example, name, backend, threads, path, meta_path, precision, int8_calibration, check_inputs
            )
        except BackendError as exc:
            error = exc
            if i + 1 < len(precisions):
                nxt = precisions[i + 1]
                note = f"{exc}; running {name} in {nxt} instead (--precision {nxt} goes straight to {nxt})"
                log.warning("%s", note)
                notes.append(note)
            continue
        graph.notes = notes
        return graph
    raise error


def _compile_checked(
    module, example, name, backend, threads, path, meta_path, precision, int8_calibration, check_inputs
):
    """One precision: the cached outcome of its check, or the check now (then cached)."""
    graph_path = path
    inputs = None
    if precision == "int8":
        if backend != "openvino":
            raise BackendError(f"int8 runs on OpenVINO only, not {backend}")
        if int8_calibration is None:
            raise BackendError(f"{name} has no int8 recipe")
        graph_path = path.with_name(f"{path.stem}-int8-q{INT8_VERSION}.xml")
        if not graph_path.is_file():
            inputs = list(int8_calibration())
            t0 = time.perf_counter()
            quantize_int8(path, inputs, graph_path)
            log.info(
                "quantized %s to int8 in %.1f s (%d calibration inputs)",
                graph_path.name,
                time.perf_counter() - t0,
                len(inputs),
            )
    meta = _read_meta(meta_path)
    tag = _check_tag(backend, precision)
    record = meta.get("checks", {}).get(tag)
    if record is not None and record.get("graph") == _identity(graph_path):
        if not record["passed"]:  # said once per start by the caller; nothing exported or checked again
            raise BackendError(f"{_check_error(name, backend, record)} (checked {record['checked']})")
        return CompiledGraph(graph_path, backend, threads, precision)
    graph = CompiledGraph(graph_path, backend, threads, precision)
    if precision == "int8":
        xs = [(inputs or list(int8_calibration()))[0]]
    elif check_inputs is not None:
        xs = [np.asarray(x, dtype=np.float32) for x in check_inputs()]
    else:
        gen = torch.Generator().manual_seed(0)
        xs = [torch.randn(example.shape, generator=gen, dtype=torch.float32).numpy()]
    with torch.inference_mode():
        refs = module(*(torch.from_numpy(x) for x in xs))
    refs = [r.float().numpy() for r in (refs if isinstance(refs, tuple) else (refs,))]
    outs = graph(*xs)
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    metric, tolerance = CHECKS[precision]
    err = max(_error(metric, out, ref) for out, ref in zip(outs, refs, strict=True))
    record = {
        "passed": bool(err <= tolerance),
        "precision": precision,
        "metric": metric,
        "error": err,
        "tolerance": tolerance,
        "input_shape": [list(x.shape) for x in xs] if len(xs) > 1 else list(xs[0].shape),
        "graph": _identity(graph_path),
        "checked": time.strftime("%Y-%m-%d %H:%M"),
    }
    meta = _read_meta(meta_path)  # another process may have added its checks meanwhile
    meta.setdefault("checks", {})[tag] = record
    meta.update(name=name, torch=torch.__version__, exporter_version=EXPORTER_VERSION, opset=OPSET)
    atomic_write_json(meta_path, meta)
    if not record["passed"]:
        raise BackendError(_check_error(name, backend, record))
    log.info(
        "%s on %s in %s checked against torch: %s %.2g (allowed %g)", name, backend, precision, metric, err, tolerance
    )
    return graph


def _error(metric: str, out: np.ndarray, ref: np.ndarray) -> float:
    """One output's error against torch's, in the check's metric (see :data:`CHECKS`)."""
    if out.shape != ref.shape:
        return float("inf")
    if metric == "max_abs":
        return float(np.abs(out - ref).max()) / (float(np.abs(ref).max()) or 1.0)
    return float(np.linalg.norm(out - ref) / (np.linalg.norm(ref) or 1.0))


def quantize_int8(onnx_path: Path, calibration: list[np.ndarray], ir_path: Path) -> None:
    """NNCF post-training int8 quantization of an exported graph, saved as OpenVINO IR.

    The transformer preset (``ModelType.TRANSFORMER``: SmoothQuant, attention matmuls in int8)
    with statistics from ``calibration``; the ``.bin`` is written first and the ``.xml`` renamed
    into place last, so an ``.xml`` on disk is always complete.

    Raises:
        BackendError: NNCF is not installed (``pip install nncf``) or quantization failed.
    """
    if not runtime_available("nncf"):
        raise BackendError("int8 needs NNCF: pip install nncf")
    import nncf
    import openvino as ov

    tmp = ir_path.with_name(f".{ir_path.stem}.{os.getpid()}.tmp.xml")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ov.Core().read_model(str(onnx_path))
            quantized = nncf.quantize(
                model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration)
            )
        ov.save_model(quantized, str(tmp))
        os.replace(tmp.with_suffix(".bin"), ir_path.with_suffix(".bin"))
        os.replace(tmp, ir_path)
    except Exception as exc:
        raise BackendError(f"int8 quantization of {onnx_path.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)


def _runtime_version(backend: str) -> str:
    return str(getattr(importlib.import_module(backend), "__version__", "?"))


def backend_summary(backend: str, threads: int | None = None) -> str:
    """``openvino 2026.4.1, 2 threads``-style description for logs and benchmark figures."""
    threads = threads or torch.get_num_threads()
    if backend == "torch":
        return f"torch {torch.__version__}, {threads} threads"
    return f"{backend} {_runtime_version(backend)} (exported from torch {torch.__version__}), {threads} threads"
