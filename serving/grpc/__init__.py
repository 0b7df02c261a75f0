"""gRPC front end: TF Serving's PredictionService/ModelService, the Open Inference
Protocol v2 GRPCInferenceService, health and reflection, all calling the DataPlane.

Stubs are generated code under ``generated/`` (scripts/gen_protos.py); nothing here
imports TensorFlow or ONNX Runtime. ``serving.grpc.server.build_grpc_server`` is the
entry point the server process uses.
"""
