"""Shared fixtures live in tests/fixtures/, one module per concern, loaded here."""

pytest_plugins = [
    "tests.fixtures.tiny_models",
    "tests.fixtures.real_models",
    "tests.fixtures.servers",
    "tests.fixtures.grpc_servers",
    "tests.fixtures.rest_lanes",
    "tests.fixtures.browser",
    "tests.fixtures.rollout",
]
