"""Real Patroni clusters on loopback for the tests: Debian's Patroni 3.0 on
each node, PostgreSQL 15, and the three-member etcd of etcdserver.py over TLS
with a login. Each node's patroni.yml, pgharbor.conf (Patroni's custom_conf)
and pg_hba.conf are the postgresql_server role's own templates, rendered by a
real ansible-playbook, so what runs here is what the role installs.

The first node starts from an existing cluster, as a server the role made
before high availability was switched on (Patroni adopts its data); the others
start empty and are cloned from the leader over TLS by the replication login."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml
from certs import make_leaf, write_cert, write_key
from etcdserver import EtcdCluster, start_cluster, stop_cluster
from pgserver import PG_BINDIR, free_port

from pgharbor.ha.etcd import EtcdClient, EtcdUser, ensure_auth
from pgharbor.ha.patroni import PatroniClient, members

REPO = Path(__file__).resolve().parents[1]
ROLE = REPO / "roles/postgresql_server"
PATRONI = "/usr/bin/patroni"
ETCD_ROOT_PASSWORD = "etcd root secret"
SECRETS = {
    "postgresql_server_ha_api_password": "api secret",
    "postgresql_server_ha_etcd_password": "etcd patroni secret",
    "postgresql_server_ha_replication_password": "replication secret",
    "postgresql_server_ha_rewind_password": "rewind secret",
}
APP_USER, APP_PASSWORD = "app", "app secret"


def _chown(path: Path) -> None:
    pw = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, pw.pw_uid, pw.pw_gid)


@dataclass
class Node:
    name: str
    basedir: Path
    port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def conf_dir(self) -> Path:
        return self.basedir / "conf"

    @property
    def data_dir(self) -> Path:
        return self.basedir / "data"

    @property
    def run_dir(self) -> Path:
        return self.basedir / "run"

    @property
    def config(self) -> Path:
        return self.basedir / "patroni.yml"

    @property
    def log(self) -> Path:
        return self.basedir / "patroni.log"

    @property
    def api(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def conninfo(self, **kwargs) -> str:
        return psycopg.conninfo.make_conninfo(**{
            "host": "127.0.0.1", "port": self.port, "dbname": "postgres", "user": APP_USER, "password": APP_PASSWORD,
            "sslmode": "verify-full", "sslrootcert": str(self.conf_dir / "tls/ca.crt"), "connect_timeout": 3, **kwargs})

    def local(self, sql: str) -> str:
        """One statement as postgres over this node's socket (peer), its output."""
        done = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BINDIR / "psql"), "-h", str(self.run_dir),
                               "-p", str(self.port), "-d", "postgres", "-XAtqc", sql],
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()


@dataclass
class PatroniCluster:
    etcd: EtcdCluster
    nodes: list[Node]
    workdir: Path
    vars_common: dict

    @property
    def ca_file(self) -> str:
        return self.etcd.ca_file

    def start(self, node: Node) -> None:
        node.process = subprocess.Popen(["runuser", "-u", "postgres", "--", PATRONI, str(node.config)],
                                        stdout=node.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def kill(self, node: Node) -> None:
        """Patroni and its PostgreSQL vanish at once, as when their machine dies (kill -9)."""
        pids = [node.process.pid] if node.process else []
        pid_file = node.data_dir / "postmaster.pid"
        if pid_file.exists():
            pids.append(int(pid_file.read_text().split()[0]))
        for pid in pids:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if node.process:
            node.process.wait(timeout=30)
        # the postmaster's children (its own session) go with it, as on a dead machine
        deadline = time.monotonic() + 30
        while subprocess.run(["pgrep", "-f", f"-D {node.data_dir}"], capture_output=True).returncode == 0:
            subprocess.run(["pkill", "-9", "-f", f"{node.data_dir}"], check=False)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node.name}'s PostgreSQL did not go away")
            time.sleep(0.2)

    def stop(self, node: Node) -> None:
        if node.process and node.process.poll() is None:
            node.process.terminate()
            try:
                node.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill(node)

    def state(self, node: Node) -> dict:
        """Patroni's own view of one node (GET /patroni), {} when it does not answer."""
        import ssl
        import urllib.request
        try:
            with urllib.request.urlopen(f"{node.api}/patroni", timeout=3,
                                        context=ssl.create_default_context(cafile=self.ca_file)) as r:
                return json.load(r)
        except OSError as e:
            body = getattr(e, "read", None)
            return json.loads(body()) if body else {}

    def wait(self, what, timeout: float = 90, why: str = "") -> float:
        """Seconds until what() is true."""
        start = time.monotonic()
        while not what():
            if time.monotonic() - start > timeout:
                tails = "\n".join(f"--- {n.name}\n{n.log.read_text()[-3000:]}" for n in self.nodes if n.log.exists())
                raise TimeoutError(f"{why or what} not reached in {timeout} s\n{tails}")
            time.sleep(0.2)
        return time.monotonic() - start

    def leader(self) -> Node | None:
        for node in self.nodes:
            if self.state(node).get("role") in ("master", "primary") and self.state(node).get("state") == "running":
                return node
        return None

    def streaming(self, node: Node) -> bool:
        """node runs as a standby and the leader sends it WAL (the leader's pg_stat_replication, as Patroni read it)."""
        leader = self.leader()
        if leader is None or leader is node or self.state(node).get("role") != "replica":
            return False
        return any(r.get("application_name") == node.name and r.get("state") == "streaming"
                   for r in self.state(leader).get("replication", []))

    def render(self, node: Node, extra: dict | None = None) -> None:
        render(self.workdir, [(node, {**self.vars_common, **(extra or {})})])


def _node_vars(node: Node, common: dict) -> dict:
    return {
        **common,
        "inventory_hostname": node.name,
        "postgresql_server_port": node.port,
        "postgresql_server_ha_api_port": node.api_port,
        "postgresql_server_data_dir": str(node.data_dir),
        "__postgresql_server_conf_dir": str(node.conf_dir),
        "__postgresql_server_tls_dir": str(node.conf_dir / "tls"),
        "__postgresql_server_run_dir": str(node.run_dir),
        "__postgresql_server_ha_pgpass": str(node.basedir / "pgpass"),
        "__postgresql_server_ha_own_address": "127.0.0.1",
        # the role's own callback; without /etc/pgharbor/on-role-change.d here it runs no hook
        "__postgresql_server_ha_on_role_change": str(ROLE / "files/pgharbor-on-role-change"),
        "__postgresql_server_log_dir": str(node.basedir),
    }


def render(workdir: Path, nodes: list[tuple[Node, dict]]) -> None:
    """The role's templates for each node, by one real ansible-playbook run."""
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    internal = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    inventory = {"all": {"hosts": {n.name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                            **defaults, **internal, "__postgresql_server_bin": str(PG_BINDIR),
                                            "__node_base": str(n.basedir), **_node_vars(n, v)}
                                       for n, v in nodes}}}
    tasks = [{"name": f"render {src}", "ansible.builtin.template": {"src": str(ROLE / "templates" / src), "dest": dest,
                                                                     "mode": "0640"}}
             for src, dest in (("patroni.yml.j2", "{{ __node_base }}/patroni.yml"),
                               ("postgresql.conf.j2", "{{ __postgresql_server_conf_dir }}/pgharbor.conf"),
                               ("pg_hba.conf.j2", "{{ __postgresql_server_conf_dir }}/pg_hba.conf"),
                               ("pg_ident.conf.j2", "{{ __postgresql_server_conf_dir }}/pg_ident.conf"))]
    (workdir / "inventory.json").write_text(json.dumps(inventory))
    (workdir / "render.yml").write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(workdir / "inventory.json"),
                           str(workdir / "render.yml")], cwd=REPO, capture_output=True, text=True, check=False,
                          env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    if done.returncode != 0:
        raise RuntimeError(f"rendering the role's templates failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    for node, _ in nodes:
        _chown(node.basedir)


def start_patroni_cluster(size: int = 2, settings: dict | None = None) -> PatroniCluster:
    """size nodes: the first adopts an existing cluster and leads, the others are cloned from it."""
    etcd = start_cluster()
    workdir = Path(tempfile.mkdtemp(prefix="pgharbor-patroni-"))
    try:
        _chown(workdir)
        anonymous = EtcdClient(etcd.members[0].url, etcd.ca_file)
        ensure_auth(anonymous, ETCD_ROOT_PASSWORD,
                    [EtcdUser("patroni", SECRETS["postgresql_server_ha_etcd_password"], ("/service/",))])
        nodes = [Node(f"n{i}", workdir / f"n{i}") for i in range(1, size + 1)]
        common = {
            **SECRETS,
            "postgresql_server_ha_address": "127.0.0.1",
            "postgresql_server_listen_addresses": ["127.0.0.1"],
            "postgresql_server_ha_etcd_hosts": [f"127.0.0.1:{m.client_port}" for m in etcd.members],
            # a test's minutes: the leader lock lives 10 s, Patroni looks every 2 s
            "postgresql_server_ha_ttl": 10, "postgresql_server_ha_loop_wait": 2,
            "postgresql_server_ha_retry_timeout": 5,
            # the role adds the members' replication and pg_rewind rules itself
            "postgresql_server_ha_members": [n.name for n in nodes],
            "postgresql_server_hba_rules": [
                {"comment": "the application", "databases": ["postgres"], "users": [APP_USER],
                 "sources": ["127.0.0.1/32"]},
            ],
            "postgresql_server_settings": settings or {},
        }
        cluster = PatroniCluster(etcd, nodes, workdir, common)
        for node in nodes:
            for d in (node.conf_dir / "tls", node.run_dir):
                d.mkdir(parents=True)
            cert, key = make_leaf(etcd.ca, cn=node.name, dns=("localhost",), ips=("127.0.0.1",))
            write_cert(node.conf_dir / "tls/server.crt", cert)
            write_key(node.conf_dir / "tls/server.key", key)
            shutil.copy(etcd.ca_file, node.conf_dir / "tls/ca.crt")
        render(workdir, [(n, common) for n in nodes])
        _existing_server(nodes[0])
        cluster.start(nodes[0])
        cluster.wait(lambda: cluster.leader() is nodes[0], why=f"{nodes[0].name} leading")
        for node in nodes[1:]:
            cluster.start(node)
        for node in nodes[1:]:
            cluster.wait(lambda n=node: cluster.streaming(n), timeout=120, why=f"{node.name} streaming")
        # and every member says so in etcd, where the others read it
        view = PatroniClient(nodes[0].api, etcd.ca_file)
        cluster.wait(lambda: all(m.state in ("running", "streaming") for m in members(view)), timeout=30,
                     why="every member running in the cluster's view")
        return cluster
    except BaseException:
        stop_patroni_cluster(PatroniCluster(etcd, locals().get("nodes", []), workdir, {}))
        raise


def _existing_server(node: Node) -> None:
    """What the postgresql_server role leaves on a single server: a cluster with data checksums,
    the replication and rewind logins its HA tasks add, and an application login; stopped."""
    _chown(node.basedir)
    _as_postgres(str(PG_BINDIR / "initdb"), "-D", str(node.data_dir), "-U", "postgres", "--auth-local=peer",
                 "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--data-checksums", "--no-sync")
    _as_postgres(str(PG_BINDIR / "pg_ctl"), "start", "-w", "-D", str(node.data_dir), "-l",
                 str(node.basedir / "single.log"), "-o", f"-c config_file={node.conf_dir}/pgharbor.conf")
    replication, rewind = (SECRETS[f"postgresql_server_ha_{k}_password"] for k in ("replication", "rewind"))
    for sql in (f"CREATE ROLE replicator LOGIN REPLICATION PASSWORD '{replication}'",
                f"CREATE ROLE rewinder LOGIN PASSWORD '{rewind}'",
                *(f"GRANT EXECUTE ON FUNCTION pg_catalog.{f} TO rewinder" for f in (
                    "pg_ls_dir(text, boolean, boolean)", "pg_stat_file(text, boolean)", "pg_read_binary_file(text)",
                    "pg_read_binary_file(text, bigint, bigint, boolean)")),
                f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'"):
        node.local(sql)
    node.local(f"CREATE TABLE acked (id bigint PRIMARY KEY, at timestamptz DEFAULT now()); "
               f"GRANT SELECT, INSERT ON acked TO {APP_USER}")
    _as_postgres(str(PG_BINDIR / "pg_ctl"), "stop", "-w", "-D", str(node.data_dir))


def _as_postgres(*argv: str) -> None:
    done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout}{done.stderr}")


def stop_patroni_cluster(cluster: PatroniCluster) -> None:
    for node in cluster.nodes:
        cluster.stop(node)
    for node in cluster.nodes:
        cluster.kill(node)
    stop_cluster(cluster.etcd)
    shutil.rmtree(cluster.workdir, ignore_errors=True)
