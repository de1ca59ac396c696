"""Run a .tflite file in Larq Compute Engine's interpreter, in LCE's own Python environment.

Started by ``edgekit.runtime.lce.LceRunner`` as ``<lce python> lce_worker.py MODEL KERNELS``
(KERNELS: ``reference`` or ``optimized`` bconv kernels; it
imports numpy and larq_compute_engine only, never edgekit). Protocol on stdin/stdout: the
worker writes one ``.npy`` record describing the model (input shape as int64), then for each
``.npy`` float32 batch it reads it answers with its first output as ``.npy`` (its own dtype);
EOF ends it.
"""

import os
import sys

import numpy as np


class Stream:
    """A pipe numpy does not take for a file: its .npy reader and writer would call
    fromfile/tofile, which need a file position that a pipe does not have."""

    def __init__(self, raw):
        self.raw = raw

    def read(self, n):
        return self.raw.read(n)

    def send(self, array):
        np.lib.format.write_array(self, np.asarray(array), allow_pickle=False)
        self.raw.flush()

    def write(self, data):
        self.raw.write(data)


def main() -> None:
    # Whatever TensorFlow prints must not corrupt the protocol: keep fd 1 for the answers.
    out = Stream(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)
    from larq_compute_engine import __version__
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    with open(sys.argv[1], "rb") as f:
        interpreter = Interpreter(f.read(), num_threads=1,
                                  use_reference_bconv=sys.argv[2:3] != ["optimized"])
    out.send(np.asarray(interpreter.input_shapes[0], dtype=np.int64))
    out.send(np.frombuffer(__version__.encode(), dtype=np.uint8))
    stdin = sys.stdin.buffer
    while stdin.peek(1):
        x = np.lib.format.read_array(Stream(stdin), allow_pickle=False)
        y = interpreter.predict(x)
        out.send(np.asarray(y[0] if isinstance(y, list) else y))  # the first output


if __name__ == "__main__":
    main()
