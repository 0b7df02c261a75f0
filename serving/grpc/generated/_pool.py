"""The private descriptor pool every generated module registers into (kept by gen_protos.py).

Our copies of TensorFlow Serving's and KServe's protos carry the upstream names
(``tensorflow.TensorProto``, ``inference.ModelInferRequest``...): in the default pool
they would clash with TensorFlow, tritonclient or kserve imported in the same process.
A private pool keeps them apart; on the wire the messages are identical.
"""

from google.protobuf import any_pb2, descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
# Well-known types our files import must be in the same pool.
for _module in (any_pb2, wrappers_pb2):
    POOL.AddSerializedFile(_module.DESCRIPTOR.serialized_pb)
