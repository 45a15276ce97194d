"""scram_verifier: the SCRAM-SHA-256 verifier PostgreSQL stores for a password.

Computed on the controller, so the server only ever receives the verifier:
the plaintext appears in no SQL statement and no server log. The salt is
derived from the password and the user name instead of drawn at random, so the
same password gives the same verifier and a second run changes nothing; it is
still unknown without the password and differs between users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata

ITERATIONS = 4096  # PostgreSQL's scram_iterations default


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def scram_verifier(password: str, user: str, iterations: int = ITERATIONS) -> str:
    if not password:
        raise ValueError(f"scram_verifier: empty password for user {user}")
    # PostgreSQL applies SASLprep; NFKC is what it amounts to for ordinary passwords.
    secret = unicodedata.normalize("NFKC", password).encode("utf-8")
    salt = hmac.new(secret, b"pgharbor scram salt\0" + user.encode("utf-8"), hashlib.sha256).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


class FilterModule:
    def filters(self):
        return {"scram_verifier": scram_verifier}
