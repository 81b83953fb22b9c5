"""The RS256 key pair: generated for local runs, loaded from files or the environment."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def ensure_keypair(private_path: Path, public_path: Path) -> bool:
    """Create an RSA key pair at the given paths unless one exists; True when created.

    Half a pair is never overwritten (that would silently invalidate issued tokens), and each
    file appears atomically, so two processes starting together cannot mix two pairs.
    """
    if private_path.exists() or public_path.exists():
        if private_path.exists() and public_path.exists():
            return False
        raise FileExistsError(
            f"only one half of the key pair exists: {private_path}, {public_path}"
        )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The private key is linked into place first and the public key last: a reader that sees
    # the public key sees the complete pair. A loser of a race keeps the winner's pair.
    for path, data, mode in ((private_path, private_pem, 0o600), (public_path, public_pem, 0o644)):
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.chmod(temporary, mode)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
    return True


@lru_cache(maxsize=8)
def read_key(env_var: str, path: str) -> str:
    """The PEM text from ``env_var`` if set, else from the file at ``path``."""
    value = os.environ.get(env_var)
    if value:
        return value.replace("\\n", "\n")
    return Path(path).read_text()
