"""Telemetry: the port the engine tells when a turn ends (``base``), and its adapters:
Prometheus metrics (``metrics``) and OpenTelemetry's SDK with an OTLP exporter (``tracing``).

The engine itself only uses ``base`` and OpenTelemetry's API (a no-op unless configured).
"""
