"""What the protocols report about model versions, decided once for REST and gRPC.

- TF Serving's model status (``GET /v1/models/{name}``, ``ModelService.GetModelStatus``):
  a version's state by TF Serving's names; a FAILED version is END with an UNKNOWN
  error and the reason, as TF Serving reports a version that did not load.
- The Open Inference Protocol's repository index (``POST /v2/repository/index``,
  ``RepositoryIndex``): every known version, READY or UNAVAILABLE with the reason.

Protocol modules turn these into their JSON or messages; they never compare states.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serving.models.states import ModelState

if TYPE_CHECKING:
    from serving.models.served_model import ServedModel


@dataclass(frozen=True)
class VersionStatus:
    """One version as TF Serving's ModelVersionStatus says it."""

    version: int
    state: str  # TF Serving's State name: LOADING, AVAILABLE, UNLOADING or END
    error_code: str  # "OK" or "UNKNOWN" (tensorflow.error.Code names)
    error_message: str


def version_status(served: ServedModel) -> VersionStatus:
    failed = served.state is ModelState.FAILED
    return VersionStatus(served.version, ModelState.END.value if failed else served.state.value,
                         "UNKNOWN" if failed else "OK", served.error or "")


@dataclass(frozen=True)
class IndexEntry:
    """One version in the repository index."""

    name: str
    version: int
    ready: bool
    reason: str  # why it failed to load; "" otherwise

    @property
    def state(self) -> str:
        return "READY" if self.ready else "UNAVAILABLE"


def repository_index(models: Iterable[ServedModel], *, ready_only: bool = False
                     ) -> list[IndexEntry]:
    """Every version of ``models`` in their order (``ready_only``: the READY ones)."""
    entries = [IndexEntry(m.name, m.version, m.state is ModelState.AVAILABLE, m.error or "")
               for m in models]
    return [e for e in entries if e.ready] if ready_only else entries


def available_versions(models: Iterable[ServedModel]) -> list[int]:
    """The versions that serve requests (v2 model metadata's ``versions``)."""
    return [m.version for m in models if m.state is ModelState.AVAILABLE]
