"""modelserve: serve ONNX models exported from Keras over REST and gRPC with dynamic batching.

The server never imports TensorFlow; see training/ for the models it serves.
"""

__version__ = "0.1.0"
