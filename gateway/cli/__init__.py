"""The ``hl7gw`` command line: a thin layer over the gateway, mappers and connectors.

One module per command group; this one assembles them under :func:`main`, the console
script entry point (``hl7gw = "gateway.cli:main"``). Each command imports what it needs
when it runs, so ``hl7gw --help`` stays fast and ``serve`` pulls in no dev tooling. Errors:
a command lets an ``Hl7gwError`` out and :class:`~gateway.cli.common.Hl7gwGroup` prints it
as one ``error:`` line with exit code 2 (see ``gateway/cli/common.py``).
"""

from __future__ import annotations

import click

from gateway.cli.bench import bench
from gateway.cli.bridge import bridge
from gateway.cli.common import Hl7gwGroup
from gateway.cli.console import console
from gateway.cli.dev import dev
from gateway.cli.function import function
from gateway.cli.keys import keys
from gateway.cli.mapper import mapper
from gateway.cli.mapping import map_
from gateway.cli.profiles import profiles
from gateway.cli.replay import replay
from gateway.cli.send import send
from gateway.cli.serve import serve

__all__ = ["main"]


@click.group(cls=Hl7gwGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="hl7gw")
def main() -> None:
    """HL7 v2 over MLLP in, FHIR R4 on Apache Kafka and cloud functions out.

    \b
    Quick start:
      hl7gw dev up                         run everything locally (Kafka, gateway, bridge,
                                           function) and send the samples
      hl7gw map samples/adt_a01.hl7        print the FHIR Bundle for one message
      hl7gw send --port 2575 FILE...       send messages over MLLP, print each ACK code
    """


# The order of ``hl7gw --help`` is alphabetical (click sorts), so registration order is free.
for _command in (serve, map_, mapper, send, bridge, function, dev, bench, profiles, replay,
                 console, keys):
    main.add_command(_command)
