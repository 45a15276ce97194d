"""Documentation of the options the Patroni modules share: a member's REST
API, the CA its certificate chains to, and the API's login for changes."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_url:
    description: A member's Patroni REST API (C(https://<address>:8008)); any member will do.
    type: str
    required: true
  ca:
    description: Path of the PEM CA file the API's certificate chains to.
    type: path
    required: true
  api_user:
    description: The login Patroni's API asks for before it changes anything (C(restapi.authentication)).
    type: str
    default: patroni
  api_password:
    description: The password of O(api_user).
    type: str
    required: true
"""
