"""Running the bridge as a process: until SIGINT or SIGTERM, then a clean drain.

While it runs, ``bridge.http`` serves ``/healthz``, ``/readyz`` and ``/metrics``
(``connectors.probes``); a taken port stops the start before Kafka is touched.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from connectors.bridge.bridge import Bridge
from connectors.probes import ProbeServer, probe_app
from connectors.settings import BridgeSettings, KafkaSettings

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_bridge(settings: BridgeSettings, kafka: KafkaSettings) -> None:
    """Run a :class:`Bridge` until SIGINT/SIGTERM; it then drains, commits and returns."""
    bridge = Bridge(settings, kafka)
    probes = _probe_server(bridge)
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        handler = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, _stop, bridge, sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no unix signals
            continue
        previous[sig] = handler
    try:
        if probes is not None:
            await probes.start()
        await bridge.run()
    finally:
        if probes is not None:
            await probes.stop()
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:
                signal.signal(sig, handler)


def _probe_server(bridge: Bridge) -> ProbeServer | None:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``bridge.http`` (None: turned off)."""
    http = bridge.settings.http
    if not http.enabled:
        return None
    app = probe_app(bridge.readiness, bridge.registry, title="hl7gw bridge")
    return ProbeServer(app, http.host, http.port, setting="bridge.http.port")


def _stop(bridge: Bridge, sig: signal.Signals) -> None:
    log.info("stop signal received", extra={"signal": sig.name})
    bridge.request_stop()
