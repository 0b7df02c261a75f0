"""OpenTelemetry spans per request, built from its stage record when it ends.

Off unless ``otlp_endpoint`` is set (or a provider is handed in, as the tests do): then
``Tracing.tracer`` is None and ``finish`` returns at once, so a request pays one
attribute test. On, each inference request becomes a SERVER span (named after its
route or RPC) with one child per stage: receive, decode, queue, batch (its size and id
as attributes) with inference inside it, and encode. The spans are made after the
response has been sent, from the times the request noted on its way
(serving/stages.py), so tracing adds no work between a request's stages; the SDK's
batch processor exports them over OTLP/HTTP from its own thread.

The parent is the caller's W3C trace context: the ``traceparent`` / ``tracestate``
header (REST) or metadata key (gRPC), noted only while tracing is on.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from serving.stages import RequestStages

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from serving.config import Settings

logger = logging.getLogger(__name__)
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
INSTRUMENTATION = "modelserve"


class Tracing:
    """The tracer of one server (None when tracing is off) and how a request's spans are
    made from its stages."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider: TracerProvider | None = None
        self.tracer: Any = None
        self.use(provider)

    def use(self, provider: TracerProvider | None) -> None:
        """Trace into ``provider`` from the next request on (None: tracing off). The
        server's layers share this object, so an embedding app or a test may hand in a
        provider of its own (an in-memory exporter, say) after the server is built."""
        self.provider = provider
        if provider is None:
            self.tracer = None
            return
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._propagator = TraceContextTextMapPropagator()
        self.tracer = provider.get_tracer(INSTRUMENTATION)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        if not settings.otlp_endpoint:
            return cls(None)
        return cls(otlp_provider(settings))

    def note_headers(self, stages: RequestStages,
                     headers: list[tuple[bytes, bytes]]) -> None:
        """Keep the caller's trace context from raw HTTP headers (only while tracing)."""
        for key, value in headers:
            if key == b"traceparent":
                stages.traceparent = value.decode("latin-1")
            elif key == b"tracestate":
                stages.tracestate = value.decode("latin-1")

    def note_metadata(self, stages: RequestStages, metadata: Any) -> None:
        """Keep the caller's trace context from gRPC invocation metadata."""
        for key, value in metadata or ():
            if key == TRACEPARENT:
                stages.traceparent = value if isinstance(value, str) else value.decode()
            elif key == TRACESTATE:
                stages.tracestate = value if isinstance(value, str) else value.decode()

    def finish(self, stages: RequestStages) -> None:
        """Make the request's spans (nothing when tracing is off or it named no model)."""
        if self.tracer is None or not stages.model:
            return
        try:
            self._spans(stages)
        except Exception:  # a tracing fault must never fail or slow the next request
            logger.exception("request %s: making its trace spans failed", stages.request_id)

    def _spans(self, stages: RequestStages) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {}
        if stages.traceparent is not None:
            carrier[TRACEPARENT] = stages.traceparent
            if stages.tracestate is not None:
                carrier[TRACESTATE] = stages.tracestate
        parent = self._propagator.extract(carrier) if carrier else None
        offset = time.time_ns() - time.monotonic_ns()

        def ns(t: float) -> int:
            return int(t * 1e9) + offset

        end = stages.done if stages.done is not None else time.monotonic()
        attributes: dict[str, Any] = {
            "modelserve.model": stages.model, "modelserve.version": stages.version,
            "modelserve.request_id": stages.request_id, "modelserve.status": stages.status}
        if stages.label:
            attributes["modelserve.label"] = stages.label
        root = self.tracer.start_span(stages.name, context=parent, kind=SpanKind.SERVER,
                                      start_time=ns(stages.arrived), attributes=attributes)
        if stages.status != "OK":
            root.set_status(Status(StatusCode.ERROR, stages.status))
        inside = trace.set_span_in_context(root)
        batch_context = inside
        for stage, start, stop in stages.intervals():
            # The model's run happens inside its batch.
            context = batch_context if stage == "inference" else inside
            span = self.tracer.start_span(stage, context=context, start_time=ns(start))
            if stage == "batch":
                span.set_attributes({"modelserve.batch.size": stages.batch_rows,
                                     "modelserve.batch.requests": stages.batch_requests,
                                     "modelserve.batch.id": stages.batch_id})
                batch_context = trace.set_span_in_context(span)
            span.end(end_time=ns(stop))
        root.end(end_time=ns(end))

    def shutdown(self) -> None:
        """Export what is still buffered (at server stop)."""
        if self.provider is not None:
            try:
                self.provider.shutdown()
            except Exception:
                logger.exception("flushing the trace exporter failed")


def otlp_provider(settings: Settings) -> TracerProvider:
    """A provider exporting by OTLP/HTTP to ``otlp_endpoint``, sampling
    ``trace_sample_ratio`` of the requests that come without a sampled parent."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES as well.
    resource = Resource.create({"service.name": settings.trace_service_name})
    provider = TracerProvider(resource=resource,
                              sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=settings.otlp_endpoint)))
    return provider
