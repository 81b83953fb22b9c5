"""The RS256 key pair: generated for local runs, loaded from files or the environment."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def ensure_keypair(private_path: Path, public_path: Path) -> bool:
    """Create an RSA key pair at the given paths unless one exists; True when created."""
    if private_path.exists() and public_path.exists():
        return False
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.write_bytes(private_pem)
    os.chmod(private_path, 0o600)
    public_path.write_bytes(public_pem)
    return True


@lru_cache(maxsize=8)
def read_key(env_var: str, path: str) -> str:
    """The PEM text from ``env_var`` if set, else from the file at ``path``."""
    value = os.environ.get(env_var)
    if value:
        return value.replace("\\n", "\n")
    return Path(path).read_text()
