"""REST gateway: task endpoints, TensorFlow Serving REST, Open Inference Protocol v2, metrics."""

from serving.rest.app import create_app

__all__ = ["create_app"]
