"""CPU inference backends for the heavy passes: exported ONNX graphs run by OpenVINO or ONNX Runtime.

On a CPU, PyTorch's eager kernels leave much of the hardware unused for SAM's image encoder and
CLIP's dense pass: measured on 2 cores (MobileSAM's encoder, 1×3×1024×1024), torch 1.73 s,
ONNX Runtime 0.82 s, OpenVINO 0.67 s, all float32 and within 3e-6 of torch.  So these passes
are exported once with ``torch.onnx.export`` from the real weights and run by a CPU runtime:

- **export**: on first use, into ``<checkpoints>/exported/<name>-<weights sha256>-<exporter>.onnx``
  (temp file + rename). The key holds the sha256 of the module's weights (its ``state_dict``,
  so a fine-tuned checkpoint or another CLIP gets its own graph), torch's version and
  :data:`EXPORTER_VERSION` (bumped whenever the exported code changes); nothing is downloaded.
- **verification**: once per graph and runtime, right after it is first compiled, the
  runtime's output on a fixed random input is compared with torch's; a graph that differs by
  more than :data:`VERIFY_TOLERANCE` (relative to the output's scale) is refused
  (:class:`BackendError`). The result is kept beside the graph (``.json``), so later starts
  only compile.
- **run**: :class:`CompiledGraph` takes and returns float32 numpy arrays; OpenVINO keeps one
  infer request per thread, ONNX Runtime's sessions are thread-safe.

torch stays the path on CUDA (:func:`resolve_backend`).

**int8** (opt-in, OpenVINO only, :func:`quantize_int8`): NNCF post-training quantization of an
exported graph, calibrated on a few photos the caller gives (the engine uses scikit-image's
bundled sample photos), cached beside the graph as OpenVINO IR. Measured on MobileSAM's encoder
(2 cores): 0.38 s instead of 0.67 s; on the first 20 ``coco_tiny_val`` photos box mIoU 71.71
(float32: 71.71), point mIoU 48.54 (float32: 49.12). It loses masks, so it is never the default.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
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
EXPORTER_VERSION = 1  # part of every cache key: bump when an exported module's code changes
INT8_VERSION = 1  # part of an int8 graph's key: bump when the quantization recipe changes
OPSET = 17
VERIFY_TOLERANCE = 1e-3  # max |runtime - torch| / max |torch| accepted at verification
INT8_TOLERANCE = 0.2  # max ||int8 - torch|| / ||torch|| on a calibration input (MobileSAM: 0.09)


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
    """One exported graph compiled for a CPU runtime; call it with float32 numpy arrays.

    Args:
        path: the ``.onnx`` file (or, for OpenVINO, an IR ``.xml``).
        backend: ``openvino`` or ``onnxruntime``.
        threads: intra-op threads; ``None`` = the runtime's default (all physical cores).
    Raises:
        BackendError: the runtime is not installed or cannot compile the graph.
    """

    def __init__(self, path: Path, backend: str, threads: int | None = None):
        if backend not in CPU_RUNTIMES:
            raise BackendError(f"{backend!r} is not a CPU runtime ({', '.join(CPU_RUNTIMES)})")
        if not runtime_available(backend):
            raise BackendError(f"{backend} is not installed: pip install {backend}")
        self.path, self.backend, self.threads = Path(path), backend, threads
        self._local = threading.local()
        try:
            if backend == "openvino":
                import openvino as ov

                config = {"PERFORMANCE_HINT": "LATENCY"}
                if threads:
                    config["INFERENCE_NUM_THREADS"] = int(threads)
                self._compiled = ov.Core().compile_model(str(self.path), "CPU", config)
            else:
                import onnxruntime as ort

                options = ort.SessionOptions()
                if threads:
                    options.intra_op_num_threads = int(threads)
                self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
                self._input = self._session.get_inputs()[0].name
        except Exception as exc:  # the runtimes raise their own types
            raise BackendError(f"{backend} cannot compile {self.path.name}: {exc}") from exc

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the graph on one input.

        Args:
            x: the graph's input (shape as exported, float32).
        Returns:
            The first output, a float32 array the caller owns.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.backend == "onnxruntime":
            return self._session.run(None, {self._input: x})[0]
        request = getattr(self._local, "request", None)
        if request is None:  # an infer request is not thread-safe: one per thread
            request = self._local.request = self._compiled.create_infer_request()
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, dynamic_axes: dict | None) -> None:
    """``torch.onnx.export`` (TorchScript exporter, opset :data:`OPSET`) into a temp file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation warnings of the exporter
            torch.onnx.export(
                module,
                (example,),
                tmp,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=dynamic_axes,
                dynamo=False,
            )
        os.replace(tmp, path)
    except Exception as exc:
        raise BackendError(f"could not export {path.name}: {type(exc).__name__}: {exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)


def compile_module(
    module: torch.nn.Module,
    example: torch.Tensor,
    name: str,
    backend: str,
    threads: int | None = None,
    dynamic_axes: dict | None = None,
    cache_dir: Path | None = None,
    int8_calibration=None,
) -> CompiledGraph:
    """Export ``module`` (once), compile it for ``backend`` and verify it against torch (once).

    Args:
        module: a CPU module in eval mode taking one float32 tensor and returning one.
        example: an input of the exported shape; its values do not matter (verification uses a
            seeded random tensor of the same shape).
        name: the graph's name in the cache (``sam-vit_t-image-encoder``, ...).
        backend: ``openvino`` or ``onnxruntime``.
        threads: intra-op threads (``None`` = all cores).
        dynamic_axes: ``torch.onnx.export``'s, for inputs whose size varies (``input``/``output``).
        cache_dir: default :func:`exported_dir`.
        int8_calibration: a callable returning calibration inputs (a list of float32 arrays of
            the exported shape) to run the graph in int8 (:func:`quantize_int8`; OpenVINO
            only); called only when the int8 graph is not cached yet.
    Returns:
        The :class:`CompiledGraph`.
    Raises:
        BackendError: export or compilation failed, or the runtime's output differs from torch
            by more than :data:`VERIFY_TOLERANCE` (:data:`INT8_TOLERANCE` in int8; the graph is
            then deleted, so a later start makes it again).
    """
    cache_dir = Path(cache_dir or exported_dir())
    key = f"{name}-{weights_sha256(module)[:16]}-torch{torch.__version__.split('+')[0]}-x{EXPORTER_VERSION}"
    path = cache_dir / f"{key}.onnx"
    meta_path = cache_dir / f"{key}.json"
    if not path.is_file():
        t0 = time.perf_counter()
        _export(module, example, path, dynamic_axes)
        log.info("exported %s in %.1f s", path, time.perf_counter() - t0)
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError):
        meta = {}
    if int8_calibration is not None:
        return _compile_int8(module, path, meta_path, meta, name, backend, threads, int8_calibration)
    graph = CompiledGraph(path, backend, threads)
    if backend not in meta.get("verified", {}):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(example.shape, generator=gen, dtype=torch.float32)
        with torch.inference_mode():
            ref = module(x).float().numpy()
        out = graph(x.numpy())
        scale = float(np.abs(ref).max()) or 1.0
        diff = float(np.abs(out - ref).max()) if out.shape == ref.shape else float("inf")
        if not diff <= VERIFY_TOLERANCE * scale:
            path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            raise BackendError(
                f"{backend} output of {name} differs from torch by {diff:.3g} (scale {scale:.3g}); use --backend torch"
            )
        meta.setdefault("verified", {})[backend] = {
            "max_abs_diff": diff,
            "output_scale": scale,
            "input_shape": list(example.shape),
            "version": _runtime_version(backend),
        }
        meta.update(name=name, torch=torch.__version__, exporter_version=EXPORTER_VERSION, opset=OPSET)
        atomic_write_json(meta_path, meta)
        log.info("%s on %s verified against torch: max |diff| %.2g (scale %.3g)", name, backend, diff, scale)
    return graph


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


def _compile_int8(module, path, meta_path, meta, name, backend, threads, calibration) -> CompiledGraph:
    """The int8 graph of an exported one: quantized once, verified once on a calibration input."""
    if backend != "openvino":
        raise BackendError(f"int8 runs on OpenVINO only, not {backend}")
    ir_path = path.with_name(f"{path.stem}-int8-q{INT8_VERSION}.xml")
    inputs = None
    if not ir_path.is_file():
        inputs = list(calibration())
        t0 = time.perf_counter()
        quantize_int8(path, inputs, ir_path)
        log.info(
            "quantized %s to int8 in %.1f s (%d calibration inputs)",
            ir_path.name,
            time.perf_counter() - t0,
            len(inputs),
        )
    graph = CompiledGraph(ir_path, backend, threads)
    tag = f"{backend}-int8-q{INT8_VERSION}"
    if tag not in meta.get("verified", {}):
        x = (inputs or list(calibration()))[0]
        with torch.inference_mode():
            ref = module(torch.from_numpy(x)).float().numpy()
        out = graph(x)
        err = float(np.linalg.norm(out - ref) / (np.linalg.norm(ref) or 1.0))
        if not err <= INT8_TOLERANCE:
            ir_path.unlink(missing_ok=True)
            ir_path.with_suffix(".bin").unlink(missing_ok=True)
            raise BackendError(f"int8 {name} differs from torch by {err:.1%} (relative L2); leave int8 off")
        meta.setdefault("verified", {})[tag] = {"relative_l2": err, "version": _runtime_version(backend)}
        atomic_write_json(meta_path, meta)
        log.info("%s int8 on %s verified against torch: relative L2 error %.3f", name, backend, err)
    return graph


def _runtime_version(backend: str) -> str:
    return str(getattr(importlib.import_module(backend), "__version__", "?"))


def backend_summary(backend: str, threads: int | None = None) -> str:
    """``openvino 2026.4.1, 2 threads``-style description for logs and benchmark figures."""
    threads = threads or torch.get_num_threads()
    if backend == "torch":
        return f"torch {torch.__version__}, {threads} threads"
    return f"{backend} {_runtime_version(backend)} (exported from torch {torch.__version__}), {threads} threads"
