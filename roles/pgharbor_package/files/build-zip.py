#!/usr/bin/env python3
"""build-zip.py SOURCE_DIR CACHE_DIR: pgharbor's package as one zip that
Python imports from (zipimport), built the same way every time (sorted names,
fixed dates), so that the same source gives the same bytes and Ansible copies
it only when the code changed. Prints the zip's path, named after its
content, written under a temporary name and renamed (runs may overlap)."""

import hashlib
import io
import os
import sys
import zipfile
from pathlib import Path

source, cache = Path(sys.argv[1]), Path(sys.argv[2])
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    # the subpackages too (pgharbor/backup/, pgharbor/tiers/, ...), in a fixed order
    for path in sorted(source.rglob("*.py")):
        info = zipfile.ZipInfo(f"pgharbor/{path.relative_to(source).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, path.read_bytes())
data = buffer.getvalue()
cache.mkdir(parents=True, exist_ok=True)
target = cache / f"pgharbor-{hashlib.sha256(data).hexdigest()[:16]}.zip"
if not target.exists():
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.rename(target)
print(target)
