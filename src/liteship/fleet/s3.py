"""Artifacts on S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph RGW…), with boto3.

    liteship serve --db postgresql://… --artifacts s3://models/liteship --workers 4

Blobs are objects ``<prefix>/ab/abcdef…`` (content-addressed, like the local store). Credentials come
from the standard AWS chain (``$AWS_ACCESS_KEY_ID`` / ``$AWS_SECRET_ACCESS_KEY`` / ``$AWS_SESSION_TOKEN``,
``~/.aws``, an instance role); the endpoint of a store that is not AWS from ``s3_endpoint_url``
(``$LITESHIP_S3_ENDPOINT_URL``) or ``$AWS_ENDPOINT_URL_S3``. :meth:`S3ArtifactStore.check` runs at
start (bucket there, credentials accepted, writes allowed), so a wrong key is one error at ``serve``,
not a failure at the first publish.

Downloads (``s3_downloads``): ``redirect`` (default) answers 307 with a presigned GET URL, so the
bytes go from the store to the device and HTTP Range works end to end; ``proxy`` streams through the
API (ranged GETs) for stores that devices cannot reach. An upload is one PUT (or a multipart upload
that S3 publishes whole on completion): an object is never visible half-written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from liteship.errors import StoreUnavailable, UsageError
from liteship.fleet.blobs import CHUNK, check_sha256, hash_file

if TYPE_CHECKING:
    from liteship.fleet.settings import Settings

_REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
_MISSING = {"404", "NoSuchBucket"}
PROBE_KEY = ".liteship-write-check"
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")`` (the prefix may be empty).

    Raises:
        UsageError: not an ``s3://BUCKET[/PREFIX]`` URL with a valid bucket name.
    """
    rest = url.removeprefix("s3://") if url.startswith("s3://") else None
    bucket, _, prefix = (rest or "").partition("/")
    if rest is None or not BUCKET_RE.match(bucket) or ".." in prefix.split("/"):
        raise UsageError(
            f"`artifacts` {url[:100]!r} is not an S3 URL; expected s3://BUCKET[/PREFIX] with a bucket "
            "name of 3-63 lower-case letters, digits, '.' or '-'."
        )
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3ArtifactStore:
    """Content-addressed blobs in one bucket, under one prefix (see the module docstring).

    Args:
        url: ``s3://bucket[/prefix]``.
        endpoint_url: The S3 API endpoint; None for AWS (or ``$AWS_ENDPOINT_URL_S3``).
        region: The signing region; None for the AWS default chain, else ``us-east-1``.
        redirect: Downloads get a presigned URL (True) or are streamed by the API (False).
        presign_s: Lifetime of a presigned URL, in seconds.
        timeout_s: Connect and read timeout of one request to the store (each is tried twice).
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        redirect: bool = True,
        presign_s: int = 3600,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.endpoint_url, self.redirect, self.presign_s = endpoint_url, redirect, presign_s
        session = boto3.session.Session()
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
            # S3-compatible servers do not all know the newer default CRC checksums
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or session.region_name or "us-east-1",
            config=config,
        )
        self.transfer = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3ArtifactStore:
        assert settings.artifacts is not None
        return cls(
            settings.artifacts,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            redirect=settings.s3_downloads == "redirect",
            presign_s=settings.s3_presign_s,
            timeout_s=settings.s3_timeout_s,
        )

    @property
    def where(self) -> str:
        return f"{self.url} (endpoint {self.endpoint_url or 'AWS'})"

    def _key(self, sha256: str) -> str:
        check_sha256(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def _failed(self, action: str, e: Exception) -> StoreUnavailable:
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            detail = f"{err.get('Code', '?')}: {err.get('Message') or 'no message'}"
        else:
            detail = f"{type(e).__name__}: {e}"
        return StoreUnavailable(
            f"the artifact store {self.where} failed to {action} ({detail[:200]}).",
            hint="Check that the store is up and the bucket exists; then retry.",
        )

    def check(self) -> None:
        """Prove at start that the bucket exists and the credentials may read and write it.

        Raises:
            UsageError: credentials missing or refused, or no such bucket.
            StoreUnavailable: the endpoint cannot be reached.
        """
        try:
            self.client.head_bucket(Bucket=self.bucket)
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + PROBE_KEY, Body=b"ok")
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + PROBE_KEY)
        except NoCredentialsError:
            raise UsageError(
                f"no S3 credentials for {self.where}.",
                hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials, or an "
                "instance role).",
            ) from None
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _REFUSED:
                raise UsageError(
                    f"S3 refused the credentials for {self.where} ({code}).",
                    hint="Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that they may read and "
                    "write this bucket.",
                ) from None
            if code in _MISSING:
                raise UsageError(
                    f"the S3 bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}.",
                    hint="Create it first (e.g. `aws s3 mb s3://BUCKET`), or fix `artifacts`.",
                ) from None
            raise self._failed("answer the start-up check", e) from None
        except BotoCoreError as e:
            raise self._failed("answer the start-up check", e) from None

    def put_file(self, path: Path) -> tuple[str, int]:
        sha, size = hash_file(path)
        if self.size(sha) == size:
            return sha, size
        try:
            self.client.upload_file(str(path), self.bucket, self._key(sha), Config=self.transfer)
        except (BotoCoreError, ClientError, boto3.exceptions.S3UploadFailedError) as e:
            raise self._failed("store the package", e) from None
        return sha, size

    def size(self, sha256: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._failed("look up an artifact", e) from None
        except BotoCoreError as e:
            raise self._failed("look up an artifact", e) from None
        return int(head["ContentLength"])

    def open_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        """The ranged GET is sent now (a store that is down fails before any byte is answered);
        the body streams as the iterator is read."""
        try:
            body = self.client.get_object(
                Bucket=self.bucket, Key=self._key(sha256), Range=f"bytes={start}-{end}"
            )["Body"]
        except (BotoCoreError, ClientError) as e:
            raise self._failed("read an artifact", e) from None
        return _stream(body)

    def delete(self, sha256: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        except (BotoCoreError, ClientError) as e:
            raise self._failed("delete an artifact", e) from None

    def download_url(self, sha256: str, filename: str | None = None) -> str | None:
        """A presigned GET URL (computed locally: no request to the store), or None when proxying."""
        if not self.redirect:
            return None
        params = {"Bucket": self.bucket, "Key": self._key(sha256)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.presign_s)
        return url


def _stream(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


__all__ = ["S3ArtifactStore", "parse_s3_url"]
