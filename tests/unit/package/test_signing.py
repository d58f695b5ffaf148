import base64
import hashlib
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from liteship.errors import SignatureError
from liteship.package import generate_keypair, key_id, load_private_key, load_public_key


def test_keygen_writes_pem_pair_private_0600_and_key_id(tmp_path):
    kp = generate_keypair(tmp_path / "k" / "a.key")
    assert kp.public_path == str(tmp_path / "k" / "a.pub")
    assert stat.S_IMODE((tmp_path / "k" / "a.key").stat().st_mode) == 0o600
    assert (tmp_path / "k" / "a.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    pub = load_public_key(kp.public_path)
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert (
        kp.key_id
        == hashlib.sha256(raw).hexdigest()[:16]
        == key_id(load_private_key(kp.private_path).public_key())
    )
    # the raw base64 spelling of the public key is accepted too
    assert key_id(load_public_key(base64.b64encode(raw))) == kp.key_id


def test_keygen_refuses_to_overwrite_unless_asked(tmp_path):
    kp = generate_keypair(tmp_path / "a.key")
    before = (tmp_path / "a.key").read_bytes()
    with pytest.raises(SignatureError, match="already exists"):
        generate_keypair(tmp_path / "a.key")
    assert (tmp_path / "a.key").read_bytes() == before
    again = generate_keypair(tmp_path / "a.key", overwrite=True)
    assert again.key_id != kp.key_id
    assert stat.S_IMODE((tmp_path / "a.key").stat().st_mode) == 0o600


def test_keys_of_the_wrong_kind_are_named(tmp_path):
    kp = generate_keypair(tmp_path / "a.key")
    with pytest.raises(SignatureError, match="is a private key; verification needs the public key"):
        load_public_key(kp.private_path)
    with pytest.raises(SignatureError, match="is a public key; signing needs the private key"):
        load_private_key(kp.public_path)
    with pytest.raises(SignatureError, match="does not exist"):
        load_public_key(tmp_path / "missing.pub")
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(SignatureError, match="neither a PEM public key"):
        load_public_key(tmp_path / "junk.pub")
