"""Versioned, signed packages: build on the workstation, verify/extract/smoke-test on the device.

No TensorFlow here: only numpy, cryptography (ed25519), the standard library and LiteRT.

    >>> from liteship.package import generate_keypair, build_package, verify_package
    >>> keys = generate_keypair("keys/liteship.key")                                # doctest: +SKIP
    >>> info = build_package("model.tflite", "out/", model_id="digits", version="1.0.0",
    ...                      private_key=keys.private_path)                         # doctest: +SKIP
    >>> verify_package(info.path, keys.public_path).version                        # doctest: +SKIP
    '1.0.0'
"""

from __future__ import annotations

from liteship.package.bundle import PackageInfo, build_package
from liteship.package.manifest import FORMAT, FileEntry, Manifest
from liteship.package.semver import SemVer, compare_versions, parse_semver
from liteship.package.signing import KeyPair, generate_keypair, key_id, load_private_key, load_public_key
from liteship.package.smoke import SmokeResult, smoke_test
from liteship.package.variants import Condition, Variant, choose, parse_when
from liteship.package.verify import Package, extract_verified, open_package, verify_package

__all__ = [
    "FORMAT",
    "Condition",
    "FileEntry",
    "KeyPair",
    "Manifest",
    "Package",
    "PackageInfo",
    "SemVer",
    "SmokeResult",
    "Variant",
    "build_package",
    "choose",
    "compare_versions",
    "extract_verified",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "open_package",
    "parse_semver",
    "parse_when",
    "smoke_test",
    "verify_package",
]
