"""Documentation of the connection options the migration modules share."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  source:
    description:
      - libpq connection string of the source database, for example
        C(host=/var/run/postgresql dbname=buffer user=postgres) (run the module as C(postgres)).
      - Reading every row needs a superuser or a role that bypasses row-level security.
    type: str
    required: true
  source_password:
    description: Password for O(source), kept out of the connection string so that it is never logged.
    type: str
  target:
    description:
      - libpq connection string of the target database, for example
        C(host=db1 dbname=buffer user=migrator sslmode=verify-full sslrootcert=/path/ca.crt).
    type: str
    required: true
  target_password:
    description: Password for O(target), kept out of the connection string so that it is never logged.
    type: str
requirements:
  - psycopg >= 3.1 where the module runs (Debian C(python3-psycopg))
"""
