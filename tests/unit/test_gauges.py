"""The text exposition pgharbor's gauges are written in: node_exporter's
textfile collector refuses a whole file that names a metric's HELP twice, so
gauges written host by host (the backup server reports every DB server it
keeps) must come out as one block per metric."""

from __future__ import annotations

from pgharbor.common.gauges import exposition, gauge, labels
from pgharbor.tiers.report import timetravel_gauges


def test_a_metric_written_for_two_hosts_has_one_help_and_its_samples_together():
    out: list[str] = []
    for host, value in (("db1", 1), ("db2", 0)):
        gauge(out, "pgharbor_example", "An example", [(labels(host=host), value)])
        gauge(out, "pgharbor_other", "Another", [(labels(host=host), value * 2)])
    text = exposition(out)
    assert text.count("# HELP pgharbor_example ") == 1 and text.count("# TYPE pgharbor_example ") == 1
    assert text.splitlines() == [
        "# HELP pgharbor_example An example", "# TYPE pgharbor_example gauge",
        'pgharbor_example{host="db1"} 1', 'pgharbor_example{host="db2"} 0',
        "# HELP pgharbor_other Another", "# TYPE pgharbor_other gauge",
        'pgharbor_other{host="db1"} 2', 'pgharbor_other{host="db2"} 0']


def test_the_time_travel_gauges_of_two_db_servers_come_out_one_block_per_metric():
    layer = {"tiers": {"tier2": {"healthy": True, "rpo_seconds": 60, "snapshots": 2,
                                 "window": {"oldest": None, "newest": None}, "newest": {}}},
             "archiver": {}}
    lines = exposition(timetravel_gauges("db1", layer) + timetravel_gauges("db2", layer)).splitlines()
    # each name's lines are one run: its HELP, its TYPE, then every host's samples
    runs = [line.split()[2] if line.startswith("# ") else line.split("{")[0] for line in lines]
    blocks = [name for i, name in enumerate(runs) if i == 0 or runs[i - 1] != name]
    assert len(blocks) == len(set(blocks)), f"a metric in two places: {blocks}"
    helps = [line for line in lines if line.startswith("# HELP ")]
    assert len(helps) == len(set(blocks))
    assert 'pgharbor_timetravel_rpo_seconds{host="db1",tier="tier2"} 60' in lines
    assert 'pgharbor_timetravel_rpo_seconds{host="db2",tier="tier2"} 60' in lines
