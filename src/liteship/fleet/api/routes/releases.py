"""Models and releases: publish a signed package (admin), list the registry, sign TUF targets offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from liteship.errors import FleetError, NotFound
from liteship.fleet import crud, registry, variants
from liteship.fleet.api.deps import AdminAuth, SessionDep, spooled_body
from liteship.fleet.bandwidth import per_release
from liteship.fleet.jobs import job_targets
from liteship.fleet.models import ID_PATTERN, ModelPublic, Release, ReleasePublic, VariantPublic
from liteship.fleet.samples import capture_targets

router = APIRouter(prefix="/api/v1", tags=["releases"])
FILENAME_PATTERN = r"^[^/\\\x00-\x1f]{1,200}$"  # a bare file name, no folders or control characters


def release_public(rel: Release, channels: dict[str, Release], session: Any) -> ReleasePublic:
    """A release with its channels and its variants (issue 24)."""
    names = sorted(name for name, r in channels.items() if r.id == rel.id)
    rows = variants.variants_of(session, [rel.id]).get(rel.id, [])
    return ReleasePublic.model_validate(rel).model_copy(
        update={"channels": names, "variants": [VariantPublic.model_validate(v) for v in rows]}
    )


def all_targets(session: Any) -> dict[str, tuple[str, int]]:
    """Every release's TUF target, plus the variants of open bench jobs (``liteship.fleet.jobs``) and
    the active capture policies (``liteship.fleet.samples``)."""
    return {
        **job_targets(session),
        **capture_targets(session),
        **{r.target_path: (r.sha256, r.size) for r in session.query(Release).all()},
        **variants.all_variant_targets(session),
    }


def _publish(app: Any, path: Path, channel: str | None, filename: str | None) -> dict[str, Any]:
    """Verify, store and record a package in one transaction; the TUF targets follow the registry."""
    state = app.state
    manifest = registry.verify_package_file(
        path=path,
        trusted_keys=state.settings.trusted_keys,
        verify=state.verify_package,
        display_name=filename or "the uploaded package",
    )
    with state.sessionmaker() as session:
        sha, size = state.store.put_file(path)
        release = crud.create_release(session, manifest=manifest, sha256=sha, size=size, channel=channel)
        signed = state.tuf.update_targets(all_targets(session))
        session.commit()
        out = release_public(
            release, crud.channels_of(session, model_id=release.model_id), session
        ).model_dump()
    out["tuf"] = "signed" if signed else "pending-offline-signature"
    out["variant"] = (manifest.get("variant") or {}).get("name")  # the variant this package added
    return out


@router.post("/releases", status_code=status.HTTP_201_CREATED)
async def publish_release(
    request: Request,
    _: AdminAuth,
    channel: str | None = Query(default=None, pattern=ID_PATTERN),
    filename: str | None = Query(default=None, pattern=FILENAME_PATTERN),
) -> dict[str, Any]:
    """Publish a signed ``.lsp`` package sent as the raw request body.

    ``filename`` (optional) is the uploaded file's name: error messages use it instead of the
    server's temporary file.

    Refused: an unsigned or tampered package, an untrusted signer, a version not greater than the
    latest of its model. Returns the release and whether its TUF target is already signed.
    """
    async with spooled_body(
        request, suffix=".lsp", what="package", empty="empty body: send the .lsp package as the request body."
    ) as path:
        return await run_in_threadpool(_publish, request.app, path, channel, filename)


@router.get("/models", response_model=list[ModelPublic])
def list_models(session: SessionDep, _: AdminAuth) -> list[ModelPublic]:
    """Every model with its releases and channels."""
    out = []
    for model, releases, channels in crud.list_models(session):
        out.append(
            ModelPublic(
                id=model.id,
                channels={n: r.version for n, r in channels.items()},
                releases=[release_public(r, channels, session) for r in releases],
            )
        )
    return out


@router.get("/models/{model_id}/releases/{version}", response_model=ReleasePublic)
def get_release(model_id: str, version: str, session: SessionDep, _: AdminAuth) -> ReleasePublic:
    rel = crud.get_release(session, model_id=model_id, version=version)
    return release_public(rel, crud.channels_of(session, model_id=model_id), session)


@router.get("/models/{model_id}/releases/{version}/manifest")
def get_manifest(model_id: str, version: str, session: SessionDep, _: AdminAuth) -> dict[str, Any]:
    return crud.get_release(session, model_id=model_id, version=version).manifest


@router.get("/models/{model_id}/downloads")
def downloads(model_id: str, session: SessionDep, _: AdminAuth) -> list[dict[str, Any]]:
    """Bytes the devices downloaded per target of the model's releases (issue 24: bandwidth)."""
    if crud.get_model(session, model_id=model_id) is None:
        raise NotFound(f"no model {model_id!r}.", hint="List models with `liteship fleet models`.")
    return [t.to_dict() for t in per_release(session, model_id=model_id)]


@router.get("/tuf/targets-draft")
def targets_draft(request: Request, session: SessionDep, _: AdminAuth) -> Response:
    """The next targets metadata (unsigned), listing every release: sign it offline, then PUT it."""
    data = request.app.state.tuf.draft_targets(all_targets(session))
    return Response(data, media_type="application/json")


@router.put("/tuf/targets")
async def install_targets(request: Request, _: AdminAuth) -> dict[str, Any]:
    """Install targets metadata signed with the (offline) targets key; snapshot/timestamp follow."""
    body = await request.body()
    try:
        version = await run_in_threadpool(request.app.state.tuf.install_targets, body)
    except FleetError as e:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(e)) from None
    return {"targets_version": version}
