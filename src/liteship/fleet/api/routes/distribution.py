"""Distribution (no token needed; integrity comes from TUF signatures): TUF metadata, TUF targets and
artifacts by content hash, with HTTP Range (206/416, Content-Range), a strong ETag and If-None-Match."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlalchemy import select

from liteship.fleet.api.deps import SessionDep
from liteship.fleet.blobs import SHA256_RE
from liteship.fleet.models import Release, ReleaseVariant

router = APIRouter(tags=["distribution"])
# <model_id>/<version>/[<sha256>.]<name>: consistent-snapshot targets carry their hash in the name
TARGET_RE = re.compile(
    r"^(?P<dir>[A-Za-z0-9][A-Za-z0-9._-]{0,127}/[0-9A-Za-z.+-]{1,64})/(?:(?P<sha>[0-9a-f]{64})\.)?(?P<name>[A-Za-z0-9][A-Za-z0-9._+-]{0,200})$"
)
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
NO_STORE = {"Cache-Control": "no-store"}  # a presigned URL expires: caches must not keep the redirect


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}.")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for one satisfiable range; None to send everything.

    Raises:
        HTTPException: 416 when the range cannot be satisfied.
    """
    m = RANGE_RE.match(header.strip()) if header else None
    if m is None or (not m.group(1) and not m.group(2)):
        return None  # absent, several ranges, or unparseable: RFC 9110 allows ignoring it
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if m.group(2) and int(m.group(2)) < start:
            return None
    else:
        suffix = int(m.group(2))
        start, end = max(size - suffix, 0), size - 1
        if suffix == 0:
            start = size
    if start >= size:
        raise HTTPException(
            status.HTTP_416_RANGE_NOT_SATISFIABLE,
            f"range {header!r} is outside the {size} bytes of this artifact.",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def serve_blob(request: Request, sha256: str, filename: str | None = None) -> Response:
    store = request.app.state.store
    direct = store.download_url(sha256, filename)  # object storage: the device fetches from it (Range too)
    if direct is not None:
        return RedirectResponse(direct, status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers=NO_STORE)
    size = store.size(sha256)
    if size is None:
        raise _not_found(f"artifact {sha256}")
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "public, max-age=31536000, immutable"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in inm.split(",")]):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if_range = request.headers.get("if-range")
    rng = (
        parse_range(request.headers.get("range"), size) if not if_range or if_range.strip() == etag else None
    )
    start, end = rng if rng is not None else (0, size - 1)
    headers["Content-Length"] = str(end - start + 1)
    if rng is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    code = status.HTTP_206_PARTIAL_CONTENT if rng is not None else status.HTTP_200_OK
    if request.method == "HEAD" or size == 0:
        return Response(status_code=code, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        store.open_range(sha256, start, end),
        status_code=code,
        headers=headers,
        media_type="application/octet-stream",
    )


@router.api_route("/api/v1/artifacts/{sha256}", methods=["GET", "HEAD"])
def artifact(sha256: str, request: Request) -> Response:
    """An artifact by its sha256."""
    if not SHA256_RE.match(sha256):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "artifact ids are sha256 content hashes (64 hex digits)."
        )
    return serve_blob(request, sha256)


@router.api_route("/tuf/targets/{path:path}", methods=["GET", "HEAD"])
def tuf_target(path: str, request: Request, session: SessionDep) -> Response:
    """A TUF target, ``<model>/<version>/<sha256>.<name>`` (or without the hash prefix)."""
    m = TARGET_RE.match(path)
    if m is None or ".." in path.split("/"):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"{path[:100]!r} is not a target path <model>/<version>/<file>."
        )
    target_path = f"{m['dir']}/{m['name']}"
    rel: Release | ReleaseVariant | None = session.scalars(
        select(Release).where(Release.target_path == target_path)
    ).first()
    if rel is None:  # a variant of a multi-variant release (issue 24)
        rel = session.scalars(select(ReleaseVariant).where(ReleaseVariant.target_path == target_path)).first()
    if rel is None or (m["sha"] is not None and m["sha"] != rel.sha256):
        raise _not_found(f"target {path[:100]!r}")
    return serve_blob(request, rel.sha256, m["name"])


@router.get("/tuf/metadata/{name}")
def tuf_metadata(name: str, request: Request) -> Response:
    """TUF metadata: ``root.json``, ``N.root.json``, ``timestamp.json``, ``N.snapshot.json``, ``N.targets.json``."""
    data = request.app.state.tuf.read_file(name)
    if data is None:
        raise _not_found(f"metadata {name[:100]!r}")
    return Response(data, media_type="application/json", headers={"Cache-Control": "no-cache"})
