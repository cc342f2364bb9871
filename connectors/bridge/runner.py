"""Running the bridge as a process: until SIGINT or SIGTERM, then a clean drain.

While it runs, ``bridge.http`` serves ``/healthz``, ``/readyz`` and ``/metrics``
(``connectors.probes``); a taken port stops the start before Kafka is touched.
"""

from __future__ import annotations

import contextlib
import logging

from connectors.bridge.bridge import Bridge
from connectors.probes import ProbeServer, probe_app
from connectors.settings import BridgeSettings, KafkaSettings
from hl7gw.shutdown import Shutdown

log = logging.getLogger(__name__)


async def run_bridge(settings: BridgeSettings, kafka: KafkaSettings,
                     shutdown: Shutdown | None = None) -> None:
    """Run a :class:`Bridge` until SIGINT/SIGTERM; it then drains, commits and returns.

    The signals are ``shutdown``'s (``hl7gw bridge``: the process's, see
    :mod:`hl7gw.shutdown`), else handled here until this returns. On a stop the records in
    flight get ``settings.drain_timeout_s`` to be delivered; only delivered records have
    their offsets committed, the rest are delivered again after the restart.
    """
    bridge = Bridge(settings, kafka)
    probes = _probe_server(bridge)
    own = Shutdown("hl7gw bridge", settings.drain_timeout_s) if shutdown is None else None
    with own or contextlib.nullcontext():
        stop = own or shutdown
        assert stop is not None
        stop.on_stop(lambda: _stop(bridge, stop))
        try:
            if probes is not None:
                await probes.start()
            await bridge.run()
        finally:
            if probes is not None:
                await probes.stop()


def _probe_server(bridge: Bridge) -> ProbeServer | None:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``bridge.http`` (None: turned off)."""
    http = bridge.settings.http
    if not http.enabled:
        return None
    app = probe_app(bridge.readiness, bridge.registry, title="hl7gw bridge")
    return ProbeServer(app, http.host, http.port, setting="bridge.http.port")


def _stop(bridge: Bridge, shutdown: Shutdown) -> None:
    log.info("stop signal received", extra={"signal": getattr(shutdown.signal, "name", None)})
    bridge.request_stop()
