# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containers.podman.podman with pipelining, for the lab's and Molecule's containers.

The collection's plugin runs every module in four podman calls: it mounts the
container's filesystem, makes a remote temporary directory, makes the module
executable and runs it. Each call starts podman, about 0.2 s here: the
pg_backup scenario's idempotence run took 123 s for 78 tasks on one host
(1.6 s a task, ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks), and
`make test` runs thousands of tasks. Real environments reach their hosts over SSH with pipelining on
(ansible.cfg); this plugin does the same in containers: the module goes to
the remote Python on stdin (`podman exec --interactive`), one call per
module, and the filesystem is mounted only when a file is copied.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: lab_podman
    short_description: Run tasks in a podman container, with pipelining
    description:
      - The connection of the lab (C(inventories/lab)) and of every Molecule scenario.
      - C(containers.podman.podman), with modules piped to the container's Python on stdin
        (one C(podman exec) a module) and the container's filesystem mounted only to copy files.
      - Pipelining is used as it is over SSH, so C(become) methods that cannot pipe (C(su)) fall back
        to a temporary file.
    options:
      remote_addr:
        description: The name or ID of the container.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: The user (name or UID) that runs commands inside the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments for the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description: The podman executable.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    transport = "lab_podman"
    has_pipelining = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._mount_tried = False

    def is_pipelining_enabled(self, wrap_async: bool = False) -> bool:
        # Always on, as ansible.cfg sets it for SSH; the become method still decides.
        return (not self.become or self.become.pipelining) and not wrap_async

    def _connect(self) -> Connection:
        # No mount here: most tasks never copy a file (see _mounted).
        if not self._connected:
            ConnectionBase._connect(self)
            self._connected = True
        return self

    def _mounted(self) -> None:
        if not self._mount_tried:
            self._mount_tried = True
            PodmanConnection._connect(self)

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec"]
        if in_data is not None:
            args.append("--interactive")  # without it, podman exec does not pass stdin on
        if self.user:
            args.extend(("--user", self.user))
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)

    def put_file(self, in_path, out_path):
        self._mounted()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mounted()
        super().fetch_file(in_path, out_path)
