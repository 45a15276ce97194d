#!/usr/bin/env python3
"""Shipping a backup to tiers 2 and 3, against the plain tools, same file, same run.

A tier-1-shaped backup of --size-gb of random bytes (what an encrypted dump
looks like to a network: incompressible). Tier 2: pgharbor's shipping (rsync
over SSH into an rrsync write-only directory, artefact then manifest,
module_utils/pgharbor/tiers/ssh.py) against a plain `rsync -e ssh` of the same
file to a plain directory, both through one real sshd on loopback
(tests/sshserver.py). Tier 3: pgharbor's upload (multipart with per-part
SHA-256, the whole file hashed against the manifest, If-None-Match, manifest
last: module_utils/pgharbor/tiers/s3.py) against boto3's `upload_file` with
the same part size and concurrency, both to the moto server over HTTP on
loopback (tests/s3server.py). Each round ships to a fresh key/directory;
medians over --rounds rounds; JSON in benchmarks/results/ and a Markdown
table on stdout.

    .venv/bin/python benchmarks/ship.py --size-gb 1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "module_utils")]

from backuptest import synthetic  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from s3server import ADMIN, REGION, start_s3  # noqa: E402
from sshserver import keygen, start_sshd  # noqa: E402

from pgharbor.tiers.s3 import S3Store  # noqa: E402
from pgharbor.tiers.s3settings import MIB, S3Settings  # noqa: E402
from pgharbor.tiers.ssh import SshTarget, ship  # noqa: E402

PART_MB = 16
CONCURRENCY = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pgharbor-ship-bench-"))
    sshd = start_sshd(work / "sshd")
    s3 = start_s3()
    try:
        tier1 = work / "tier1"
        tier1.mkdir()
        backup = synthetic(tier1, int(args.size_gb * 1e9), datetime.now(timezone.utc))
        size = backup.manifest.size
        identity = work / "db1"
        public = keygen(identity, "db1")
        known_hosts = sshd.known_hosts(work / "known_hosts")
        ssh = " ".join(SshTarget("127.0.0.1", sshd.user, str(identity), str(known_hosts), port=sshd.port)
                       .ssh_command())
        s3.bucket("bench")
        admin = s3.client()
        timings: dict[str, list[float]] = {}

        def timed(name: str, action) -> None:
            started = time.monotonic()
            action()
            timings.setdefault(name, []).append(time.monotonic() - started)
            print(f"{name}: {timings[name][-1]:.1f} s", file=sys.stderr)

        for round_no in range(args.rounds):
            incoming = work / f"incoming-{round_no}"
            plain = work / f"plain-{round_no}"
            incoming.mkdir()
            plain.mkdir()
            sshd.authorized_keys.write_text("")
            sshd.authorize(public, f'restrict,command="rrsync -wo -no-del {incoming}"')
            target = SshTarget("127.0.0.1", sshd.user, str(identity), str(known_hosts), port=sshd.port, retries=0)
            timed("tier 2: pgharbor (rsync over SSH, write-only, artefact + manifest)",
                  lambda target=target: ship(backup, target))
            sshd.authorized_keys.write_text("")
            sshd.authorize(public, "restrict")
            timed("tier 2: plain rsync -e ssh", lambda plain=plain: subprocess.run(
                ["rsync", "--times", "-e", ssh, str(backup.artefact), f"{sshd.user}@127.0.0.1:{plain}/"], check=True))
            shutil.rmtree(incoming)
            shutil.rmtree(plain)

            store = S3Store(S3Settings(bucket="bench", prefix=f"round{round_no}/", endpoint_url=s3.url, region=REGION,
                                       access_key_id=ADMIN["aws_access_key_id"],
                                       secret_access_key=ADMIN["aws_secret_access_key"],
                                       part_size_mb=PART_MB, concurrency=CONCURRENCY))
            timed("tier 3: pgharbor (multipart, CRC32 per part, SHA-256 of the whole, manifest last)",
                  lambda store=store: store.ship(backup))
            config = TransferConfig(multipart_threshold=PART_MB * MIB, multipart_chunksize=PART_MB * MIB,
                                    max_concurrency=CONCURRENCY)
            timed("tier 3: boto3 upload_file", lambda key=f"plain{round_no}/{backup.artefact.name}", config=config:
                  admin.upload_file(str(backup.artefact), "bench", key, Config=config))
            for page in admin.get_paginator("list_objects_v2").paginate(Bucket="bench"):
                for item in page.get("Contents", []):
                    admin.delete_object(Bucket="bench", Key=item["Key"])

        medians = {name: statistics.median(values) for name, values in timings.items()}
        result = {"date": time.strftime("%Y-%m-%d"), "cpus": len(os.sched_getaffinity(0)), "bytes": size,
                  "rounds": args.rounds, "part_mb": PART_MB, "concurrency": CONCURRENCY, "seconds": timings,
                  "median_seconds": medians,
                  "command": f".venv/bin/python benchmarks/ship.py --size-gb {args.size_gb} --rounds {args.rounds}"}
        out = REPO / "benchmarks" / "results" / f"ship-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        gb = size / 1e9
        baseline = {"tier 2": "tier 2: plain rsync -e ssh", "tier 3": "tier 3: boto3 upload_file"}
        print("| shipping | median s | runs (s) | s per GB | vs the plain tool |")
        print("| --- | ---: | --- | ---: | ---: |")
        for name, median in medians.items():
            runs = ", ".join(f"{v:.1f}" for v in timings[name])
            base = medians[baseline[name[:6]]]
            print(f"| {name} | {median:.1f} | {runs} | {median / gb:.1f} | {median / base:.2f}x |")
        print(f"\n{gb:.2f} GB file, {result['cpus']} CPUs; results: {out.relative_to(REPO)}")
    finally:
        s3.stop()
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
