"""Tampering: every way of changing a signed package is refused with a message that says what changed."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest

from liteship.errors import LiteshipError, PackageError, SignatureError
from liteship.package import extract_verified, verify_package
from liteship.package.archive import write_archive


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rewrite(package, tmp_path: Path, change) -> Path:
    """A canonical archive of the package's members after ``change(members)``: what an attacker would make."""
    files = members(package.path)
    change(files)
    out = tmp_path / "tampered.lsp"
    out.write_bytes(write_archive(files))
    return out


def flip(path, tmp_path: Path, offset: int, bit: int = 0x01) -> Path:
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= bit
    out = tmp_path / f"flip{offset}.lsp"
    out.write_bytes(bytes(data))
    return out


def test_round_trip_returns_the_manifest(package, keys):
    m = verify_package(package.path, keys.public_path)
    assert m == package.manifest
    assert m.model_id == "digits" and m.version == "1.2.0" and m.key_id == keys.key_id
    assert set(m.files) == {"model.tflite", "golden.npz", "labels.txt"}


def test_untouched_rewrite_still_verifies(package, keys, tmp_path):
    # guards the tamper tests below: rewriting alone must not be what makes them fail
    assert verify_package(rewrite(package, tmp_path, lambda f: None), keys.public_path) == package.manifest


def test_byte_flip_in_model_is_named(package, keys, tmp_path):
    data = Path(package.path).read_bytes()
    model = members(package.path)["model.tflite"]
    bad = flip(package.path, tmp_path, data.index(model) + len(model) // 2)
    with pytest.raises(PackageError, match=r"model.tflite in .* was modified: its sha256"):
        verify_package(bad, keys.public_path)


def test_byte_flip_in_manifest_breaks_the_signature(package, keys, tmp_path):
    data = Path(package.path).read_bytes()
    bad = flip(package.path, tmp_path, data.index(b'"version":"1.2.0"') + 12)
    with pytest.raises(SignatureError, match="changed after signing"):
        verify_package(bad, keys.public_path)


def test_manifest_edited_and_rezipped_breaks_the_signature(package, keys, tmp_path):
    def edit(files):
        doc = json.loads(files["manifest.json"])
        doc["version"] = "9.9.9"
        files["manifest.json"] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    with pytest.raises(SignatureError, match="changed after signing"):
        verify_package(rewrite(package, tmp_path, edit), keys.public_path)


def test_added_removed_and_renamed_files(package, keys, tmp_path):
    with pytest.raises(PackageError, match=r"holds \['extra.bin'\], which its signed manifest does not list"):
        verify_package(rewrite(package, tmp_path, lambda f: f.update({"extra.bin": b"x"})), keys.public_path)
    with pytest.raises(PackageError, match=r"lacks \['golden.npz'\]"):
        verify_package(rewrite(package, tmp_path, lambda f: f.pop("golden.npz")), keys.public_path)
    with pytest.raises(PackageError, match=r"lacks \['model.tflite'\]"):
        verify_package(
            rewrite(package, tmp_path, lambda f: f.update({"model2.tflite": f.pop("model.tflite")})),
            keys.public_path,
        )
    with pytest.raises(PackageError, match="has no signature.json; it is unsigned"):
        verify_package(rewrite(package, tmp_path, lambda f: f.pop("signature.json")), keys.public_path)
    # a member appended by an ordinary zip tool is caught the same way
    appended = tmp_path / "appended.lsp"
    appended.write_bytes(Path(package.path).read_bytes())
    with zipfile.ZipFile(appended, "a") as zf:
        zf.writestr("notes.txt", "hi")
    with pytest.raises(PackageError, match=r"holds \['notes.txt'\]"):
        verify_package(appended, keys.public_path)


def test_wrong_key_names_both_key_ids(package, other_keys, keys):
    with pytest.raises(
        SignatureError, match=f"signed by key {keys.key_id}, but the given public key is {other_keys.key_id}"
    ):
        verify_package(package.path, other_keys.public_path)


@pytest.mark.parametrize(
    "name", ["../evil.sh", "/etc/passwd", "a/../../b", "..\\x", "C:/x", "ok/./x", ".hidden"]
)
def test_path_tricks_in_member_names(package, keys, tmp_path, name):
    bad = rewrite(package, tmp_path, lambda f: f.update({name: b"x"}))
    with pytest.raises(
        PackageError, match=f"member name {name!r} is unsafe".replace("\\", "\\\\").replace(".", r"\.")
    ):
        verify_package(bad, keys.public_path)


def test_symlink_and_compressed_members(package, keys, tmp_path):
    link = tmp_path / "link.lsp"
    link.write_bytes(Path(package.path).read_bytes())
    with zipfile.ZipFile(link, "a") as zf:
        info = zipfile.ZipInfo("model.link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(PackageError, match="'model.link' is a symbolic link"):
        verify_package(link, keys.public_path)
    bomb = tmp_path / "bomb.lsp"
    bomb.write_bytes(Path(package.path).read_bytes())
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (8 << 20))
    assert bomb.stat().st_size < Path(package.path).stat().st_size + 100_000
    with pytest.raises(PackageError, match=r"'zeros.bin' is compressed \(\d+ bytes expanding to 8388608\)"):
        verify_package(bomb, keys.public_path)


def test_size_limit_non_archive_and_missing_file(package, keys, tflite_float, tmp_path):
    with pytest.raises(PackageError, match="more than the limit of 1000"):
        verify_package(package.path, keys.public_path, max_bytes=1000)
    with pytest.raises(PackageError, match="not a readable zip archive"):
        verify_package(tflite_float, keys.public_path)
    with pytest.raises(PackageError, match="does not exist"):
        verify_package(tmp_path / "nope.lsp", keys.public_path)


def test_bytes_outside_file_data_are_covered(package, keys, tmp_path):
    data = Path(package.path).read_bytes()
    trailing = tmp_path / "trailing.lsp"
    trailing.write_bytes(data + b"\0")
    with pytest.raises(PackageError, match="canonical form"):
        verify_package(trailing, keys.public_path)
    # the timestamp of the first local header (bytes 10..13) is in no hashed file
    with pytest.raises(PackageError, match="canonical form: the header of 'manifest.json' at byte 0"):
        verify_package(flip(package.path, tmp_path, 11), keys.public_path)


def test_a_flipped_bit_anywhere_is_refused(package, keys, tmp_path):
    size = Path(package.path).stat().st_size
    with zipfile.ZipFile(package.path) as zf:
        headers = {
            o for i in zf.infolist() for o in range(i.header_offset, i.header_offset + 30 + len(i.filename))
        }
    offsets = sorted(headers | set(range(size - 400, size)) | set(range(0, size, 97)))
    for offset in offsets:  # every local header and the zip directory at the end, the data sampled
        for bit in (0x01, 0x80):
            with pytest.raises(LiteshipError):
                verify_package(flip(package.path, tmp_path, offset, bit), keys.public_path)


def test_extract_writes_only_after_verification(package, keys, tmp_path):
    dest = tmp_path / "incoming" / "1.2.0"
    m = extract_verified(package.path, keys.public_path, dest)
    assert m == package.manifest
    assert sorted(p.name for p in dest.iterdir()) == sorted([*m.files, "manifest.json", "signature.json"])
    assert (dest / "model.tflite").read_bytes() == members(package.path)["model.tflite"]
    with pytest.raises(PackageError, match="not an empty folder"):
        extract_verified(package.path, keys.public_path, dest)

    data = Path(package.path).read_bytes()
    model = members(package.path)["model.tflite"]
    bad = flip(package.path, tmp_path, data.index(model) + len(model) - 10)
    dest2 = tmp_path / "incoming" / "bad"
    with pytest.raises(PackageError, match="model.tflite .* was modified"):
        extract_verified(bad, keys.public_path, dest2)
    assert not dest2.exists()
    assert sorted(p.name for p in (tmp_path / "incoming").iterdir()) == ["1.2.0"]  # no temp folder left


@pytest.mark.parametrize("keep", [0.05, 0.2, 0.6, 0.99])
def test_truncated_package_says_truncated(package, keys, tmp_path, keep):
    # cut short, the zip's end record is gone; zipfile may then find golden.npz's inside the package
    data = Path(package.path).read_bytes()
    cut = tmp_path / "cut.lsp"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(PackageError, match="is truncated or corrupt") as e:
        verify_package(cut, keys.public_path)
    assert "unsigned" not in str(e.value)


def test_unsigned_zip_is_still_called_unsigned(keys, tmp_path):
    plain = tmp_path / "plain.lsp"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("model.tflite", b"x")
    with pytest.raises(PackageError, match="has no manifest.json; it is unsigned"):
        verify_package(plain, keys.public_path)


def test_extracted_folder_gets_the_normal_mode(package, keys, tmp_path):
    import os

    old = os.umask(0o022)
    try:
        extract_verified(package.path, keys.public_path, tmp_path / "current")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "current").stat().st_mode) == 0o755  # not mkdtemp's 0700
    assert stat.S_IMODE((tmp_path / "current" / "model.tflite").stat().st_mode) == 0o644
