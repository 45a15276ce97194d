"""Documentation of the options the etcd modules share: a member to talk to,
the CA its certificate chains to, and the root login."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  endpoint:
    description: A running member's client URL (C(https://<address>:2379)).
    type: str
    required: true
  ca:
    description: Path of the PEM CA file the member's certificate chains to.
    type: path
    required: true
  root_password:
    description: The password of etcd's C(root) user.
    type: str
    required: true
"""
