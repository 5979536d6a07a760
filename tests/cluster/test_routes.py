"""The bed's hosts reach one another and nothing else: no route leaves their network."""

from __future__ import annotations

import errno
import ipaddress
import sys

import pytest

from tests.bed import HOSTS, Bed

pytestmark = pytest.mark.integration


def test_every_host_routes_only_to_the_bed_and_its_own_loopback(bed: Bed) -> None:
    subnet = bed.network.subnet
    for name in HOSTS:
        routes = bed.network[name].routes()
        assert routes, name  # a table was read: an empty one would prove nothing
        for route in routes:
            fields = route.split()
            assert fields[0] != "default", (name, route)  # no way out at all
            assert "via" not in fields, (name, route)  # nor through a gateway
            kind = fields[0] if fields[0] in ("local", "broadcast", "multicast") else ""
            destination = ipaddress.ip_network(fields[1] if kind else fields[0], strict=False)
            if kind:  # the kernel's own: the host's addresses, loopback's, on its link
                assert (
                    destination.is_loopback
                    or destination.is_multicast
                    or destination.is_link_local
                    or (destination.version == 4 and destination.subnet_of(subnet))
                ), (name, route)
            else:  # the bed's /24, and IPv6's link-local net: neither leaves the bridge
                assert destination == subnet or destination.is_link_local, (name, route)


def test_a_host_cannot_reach_past_the_bed(bed: Bed) -> None:
    """Beyond the routing table, the kernel's own verdict: an address outside the bed is
    unreachable from a host, and the machine's own Postgres (on loopback only) is not
    served to it through the bed's gateway."""
    probe = (
        "import socket, sys\n"
        "for address, port in [('198.51.100.1', 80), (sys.argv[1], 5432)]:\n"
        "    try:\n"
        "        socket.create_connection((address, port), timeout=2).close()\n"
        "        print(address, 'reached')\n"
        "    except OSError as error:\n"
        "        print(address, error.errno)\n"
    )
    found = bed.network["app1"].run(sys.executable, "-c", probe, bed.network.gateway)
    outside, gateway = found.stdout.splitlines()
    assert outside == f"198.51.100.1 {errno.ENETUNREACH}"
    assert gateway == f"{bed.network.gateway} {errno.ECONNREFUSED}"
