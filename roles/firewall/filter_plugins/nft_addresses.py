"""Address filters for the firewall's nftables sets.

nftables keeps IPv4 and IPv6 addresses in separate sets, so the role splits
each list by family. Every value is parsed here, on the controller, so that a
typo stops the play with the setting's name instead of reaching nft.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(values: Iterable[object], setting: str) -> list[Network]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value), strict=True))
        except ValueError as exc:
            raise ValueError(
                f"{setting}: {value!r} is not an IP address or network ({exc}); "
                "write an address (192.0.2.10) or a network with its host bits zero "
                "(192.0.2.0/24, 2001:db8::/32)"
            ) from None
    return networks


def nft_addresses(values: Iterable[object], family: int, setting: str = "addresses") -> list[str]:
    """The entries of one IP family (4 or 6), in nft's notation, without repeats."""
    if family not in (4, 6):
        raise ValueError(f"nft_addresses: family must be 4 or 6, got {family!r}")
    found: list[str] = []
    for network in _parse(values, setting):
        text = str(network.network_address) if network.num_addresses == 1 else str(network)
        if network.version == family and text not in found:
            found.append(text)
    return found


def ip_in_networks(address: str, networks: Iterable[object], setting: str = "networks") -> bool:
    """Whether address lies in one of networks."""
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in _parse(networks, setting))


class FilterModule:
    def filters(self):
        return {"nft_addresses": nft_addresses, "ip_in_networks": ip_in_networks}
