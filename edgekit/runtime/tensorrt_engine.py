"""TensorRT serialized engines (.engine / .plan) through the TensorRT 10 Python API.

Written against the real API (``deserialize_cuda_engine``, ``num_io_tensors``,
``set_tensor_address``, ``execute_async_v3``); device buffers come from PyTorch when it has
CUDA, else from cuda-python. Unverified on the development machine, which has neither
TensorRT nor a GPU: there the runner raises MissingBackendError.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from edgekit.core.errors import BenchError, MissingBackendError
from edgekit.core.lazy import require
from edgekit.runtime.base import Runner, TensorSpec


class _TorchBuffers:
    def __init__(self) -> None:
        self.torch = importlib.import_module("torch")
        if not self.torch.cuda.is_available():
            raise ImportError("torch has no CUDA")
        self.stream = self.torch.cuda.Stream()
        self.handle = self.stream.cuda_stream

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        ref = self.torch.from_numpy(np.empty(0, dtype=dtype))
        return self.torch.empty(shape, dtype=ref.dtype, device="cuda")

    def ptr(self, buf: Any) -> int:
        return int(buf.data_ptr())

    def upload(self, buf: Any, array: np.ndarray) -> None:
        buf.copy_(self.torch.from_numpy(np.ascontiguousarray(array)))
        self.torch.cuda.synchronize()

    def download(self, buf: Any) -> np.ndarray:
        return buf.cpu().numpy()

    def free(self, buf: Any) -> None:
        pass  # the caching allocator reclaims the tensor once the runner drops it

    def sync(self) -> None:
        self.stream.synchronize()

    def peak_bytes(self) -> int | None:
        return int(self.torch.cuda.max_memory_allocated())


class _CudaPythonBuffers:
    def __init__(self) -> None:
        try:
            self.rt = importlib.import_module("cuda.bindings.runtime")
        except ImportError:
            self.rt = importlib.import_module("cuda.cudart")  # cuda-python < 12.6
        self.handle = int(self._ok(self.rt.cudaStreamCreate()))
        self._meta: dict[int, tuple[tuple[int, ...], np.dtype]] = {}

    def _ok(self, result: tuple[Any, ...]) -> Any:
        err, *values = result
        if int(err) != 0:
            raise BenchError(f"CUDA error {err}")
        return values[0] if values else None

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> int:
        ptr = int(self._ok(self.rt.cudaMalloc(int(np.prod(shape)) * np.dtype(dtype).itemsize)))
        self._meta[ptr] = (shape, np.dtype(dtype))
        return ptr

    def ptr(self, buf: int) -> int:
        return buf

    def upload(self, buf: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpy(buf, array.ctypes.data, array.nbytes, kind))

    def download(self, buf: int) -> np.ndarray:
        shape, dtype = self._meta[buf]
        out = np.empty(shape, dtype=dtype)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpy(out.ctypes.data, buf, out.nbytes, kind))
        return out

    def free(self, buf: int) -> None:
        self._ok(self.rt.cudaFree(buf))
        self._meta.pop(buf, None)

    def sync(self) -> None:
        self._ok(self.rt.cudaStreamSynchronize(self.handle))

    def peak_bytes(self) -> int | None:
        return None


def _cuda_buffers() -> _TorchBuffers | _CudaPythonBuffers:
    for factory in (_TorchBuffers, _CudaPythonBuffers):
        try:
            return factory()
        except ImportError:
            continue
    raise MissingBackendError(
        "TensorRT engines need CUDA buffers from PyTorch with CUDA or from cuda-python "
        "(pip install cuda-python)"
    )


class TensorRTRunner(Runner):
    name = "tensorrt"
    suffixes = (".engine", ".plan")

    def load(self) -> None:
        trt = require("tensorrt", purpose="benchmarking TensorRT engines")
        self.trt = trt
        self.cuda = _cuda_buffers()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BenchError(f"TensorRT cannot deserialize {self.path.name} (built for "
                             "another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._input_names = [n for n in names if is_input[n]]
        self._output_names = [n for n in names if not is_input[n]]
        self._buffers: dict[str, Any] = {}

    def _dtype(self, name: str) -> np.dtype:
        return np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))

    def input_specs(self) -> list[TensorSpec]:
        return [
            TensorSpec(n, tuple(None if d < 0 else int(d) for d in self.engine.get_tensor_shape(n)),
                       self._dtype(n))
            for n in self._input_names
        ]

    def max_batch(self) -> int | None:
        name = self._input_names[0]
        if self.engine.get_tensor_shape(name)[0] >= 0:
            return None
        # A dynamic batch is bounded by the optimization profile the engine was built with.
        return int(self.engine.get_tensor_profile_shape(name, 0)[2][0])

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        self._free()  # predict() binds once per chunk; cuda-python memory is not collected
        for name, array in zip(self._input_names, arrays, strict=True):
            if not self.context.set_input_shape(name, tuple(array.shape)):
                raise BenchError(f"{self.path.name} does not accept {name!r} of shape "
                                 f"{tuple(array.shape)} (outside its optimization profile?)")
            buf = self.cuda.alloc(tuple(array.shape), self._dtype(name))
            self.cuda.upload(buf, array)
            self._buffers[name] = buf
        for name in self._output_names:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            self._buffers[name] = self.cuda.alloc(shape, self._dtype(name))
        for name, buf in self._buffers.items():
            self.context.set_tensor_address(name, self.cuda.ptr(buf))

    def run(self) -> None:
        if not self.context.execute_async_v3(self.cuda.handle):
            raise BenchError("TensorRT execute_async_v3 failed")
        self.cuda.sync()  # the timing must include the GPU work

    def outputs(self) -> list[np.ndarray]:
        return [self.cuda.download(self._buffers[n]) for n in self._output_names]

    def _free(self) -> None:
        for buf in self._buffers.values():
            self.cuda.free(buf)
        self._buffers = {}

    def close(self) -> None:
        if hasattr(self, "_buffers"):
            self._free()

    def gpu_memory_bytes(self) -> int | None:
        return int(self.engine.device_memory_size) + (self.cuda.peak_bytes() or 0)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self.trt.__version__, "device": "cuda"}
