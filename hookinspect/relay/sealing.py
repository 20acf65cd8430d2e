"""Sealed relay channels: the laptop makes a key pair, the relay encrypts each event to its
public key as it arrives (libsodium's sealed box: X25519 + XSalsa20-Poly1305, through PyNaCl),
and stores and sends only ciphertext. Only the private key, in a 0600 file beside the laptop's
store, opens them."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from hookinspect.errors import UsageError
from hookinspect.private_files import FILE_MODE, make_private_dir

KEY_DIR = "keys"


class SealError(Exception):
    """A sealed event that this key cannot open (another channel's key, or damaged bytes)."""


def new_key_pair() -> tuple[bytes, str]:
    """(the private key's 32 bytes, the public key in base64 for the relay)."""
    private = PrivateKey.generate()
    return bytes(private), base64.b64encode(bytes(private.public_key)).decode()


def checked_public_key(text: object) -> str:
    """The relay's check of a channel's public key: 32 bytes in base64, or ValueError."""
    if not isinstance(text, str):
        raise ValueError("seal_key must be a string")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("seal_key is not base64") from None
    if len(raw) != PublicKey.SIZE:
        raise ValueError(f"seal_key must be {PublicKey.SIZE} bytes (an X25519 public key)")
    return text


def seal(public_key_b64: str, plaintext: bytes) -> bytes:
    return SealedBox(PublicKey(base64.b64decode(public_key_b64))).encrypt(plaintext)


def open_sealed(private_key: bytes, ciphertext: bytes) -> bytes:
    try:
        return SealedBox(PrivateKey(private_key)).decrypt(ciphertext)
    except CryptoError:
        raise SealError("it was sealed for another key, or its bytes were changed") from None


def key_path(store_path: Path, channel_id: str) -> Path:
    """Where `channel new --sealed` keeps a channel's private key: beside the store."""
    return Path(store_path).parent / KEY_DIR / f"{channel_id}.key"


def save_private_key(path: Path, key: bytes) -> None:
    """Written 0600 from the first byte (never readable by others, even briefly)."""
    make_private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(base64.b64encode(key).decode() + "\n")


def load_private_key(path: Path) -> bytes:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the channel key {path}: {exc.strerror or exc}") from None
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        key = b""
    if len(key) != PrivateKey.SIZE:
        raise UsageError(f"{path} holds no channel key (32 bytes in base64)")
    if Path(path).stat().st_mode & 0o077:
        raise UsageError(f"{path} is readable by others: chmod 600 {path}")
    return key
