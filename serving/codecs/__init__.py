"""Raw input → model input, shared by training and serving so the two cannot drift.

numpy and Pillow only: no web, gRPC, TensorFlow or ONNX Runtime imports here.
Each codec raises serving.errors.InvalidInput with a message naming what was wrong.
"""

from serving.codecs.digit import DigitCodec
from serving.codecs.image import ImageCodec
from serving.codecs.text import TextCodec, Tokenizer

__all__ = ["DigitCodec", "ImageCodec", "TextCodec", "Tokenizer"]
