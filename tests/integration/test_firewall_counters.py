"""pgharbor-firewall-counters against a real nftables table, in a network
namespace of the test's own (unshare --net): the packets the table's rule
drops are the packets the metrics count; a host without the table is an
error that names it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# As roles/firewall's table declares it: a named counter, and a rule that counts what it drops.
RULESET = """
table inet pgharbor {
    counter dropped {
    }
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 9 counter name dropped drop
    }
}
"""


def in_namespace(script: str) -> subprocess.CompletedProcess:
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        pytest.fail("needs root, nft and unshare (make system-deps installs nftables)")
    return subprocess.run(["unshare", "--net", "sh", "-euc", script], capture_output=True, text=True, timeout=60)


def command(*args: str) -> str:
    """The command line as the installed pgharbor-firewall-counters runs it: the package's main()."""
    return " ".join([f"PYTHONPATH={REPO / 'module_utils'}", sys.executable, "-c",
                     "'import sys; from pgharbor.cli.pgharbor_firewall_counters import main; sys.exit(main())'",
                     *args])


def test_the_dropped_packets_are_counted(tmp_path):
    (tmp_path / "ruleset.nft").write_text(RULESET)
    metrics = tmp_path / "firewall.prom"
    result = in_namespace(f"""
        ip link set lo up
        nft -f {tmp_path / 'ruleset.nft'}
        for i in 1 2 3; do python3 -c 'import socket; s = socket.socket(); s.settimeout(0.2)
try: s.connect(("127.0.0.1", 9))
except OSError: pass'; done
        {command('--prometheus', str(metrics))}
    """)
    assert result.returncode == 0, result.stderr
    text = metrics.read_text()
    assert "# TYPE pgharbor_firewall_packets_total counter" in text
    # each connect sends its SYN again while it waits: at least one dropped packet per attempt
    packets = int(re.search(r'^pgharbor_firewall_packets_total\{counter="dropped"\} (\d+)$', text, re.M).group(1))
    assert packets >= 3
    size = int(re.search(r'^pgharbor_firewall_bytes_total\{counter="dropped"\} (\d+)$', text, re.M).group(1))
    assert size >= 60 * packets
    assert "dropped: " in result.stdout


def test_a_host_without_the_table_is_an_error_that_names_it():
    result = in_namespace(command())
    assert result.returncode == 2
    assert "nft could not list the counters of table inet pgharbor" in result.stderr
    assert "is the firewall role applied on this host" in result.stderr
