"""`Endpoints(ws)`: deploy, list, describe and delete endpoints; create, list and revoke API keys.

A thin shell over the registry, the artifact store and the metadata DB: deploying resolves every
variant's model reference, refuses versions that are not Approved (unless `override_approval=True`,
which is recorded in lineage with the reason), loads each model to prove it is intact, plans where its
features come from, stores the configuration and records the `serving.deploy` action.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tideml.errors import Conflict, NotFound, PolicyViolation, ValidationError
from tideml.lineage import ArtifactSpec, current_user
from tideml.meta.models import utcnow
from tideml.meta.serving_tables import ApiKeyRow, EndpointRow, EndpointVariantRow
from tideml.serving.auth import KeyRecord, new_api_key
from tideml.serving.model import ServingModel, load_serving_model
from tideml.serving.sources import FeaturePlan, GroupInfo, plan_features
from tideml.serving.spec import EndpointConfig, check_endpoint_name, parse_endpoint_config

if TYPE_CHECKING:
    from tideml.registry import ModelVersion
    from tideml.workspace import Workspace

__all__ = ["ApiKeyInfo", "EndpointInfo", "Endpoints", "load_group_infos", "resolve_variant"]


@dataclasses.dataclass(frozen=True)
class EndpointInfo:
    """A deployed endpoint as stored."""

    name: str
    status: str
    config: dict[str, Any]
    variants: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


@dataclasses.dataclass(frozen=True)
class ApiKeyInfo:
    """An API key's metadata (never the key itself, which is shown once at creation)."""

    key_id: str
    name: str
    endpoint: str | None
    rate_per_second: float
    burst: int
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["revoked_at"] = self.revoked_at.isoformat() if self.revoked_at else None
        return data


def load_group_infos(ws: Workspace, only: Sequence[str] | None = None) -> list[GroupInfo]:
    """The online-enabled feature groups of the workspace, as the feature planner needs them."""
    from tideml.features.catalog import GroupCatalog
    from tideml.features.spec import FeatureType

    records = {r.spec.name: r for r in GroupCatalog(ws.metadata).list_all()}
    if only is not None:
        for name in only:
            if name not in records:
                raise NotFound(
                    "no such feature group",
                    obj=f"feature group {name}",
                    field="feature_groups",
                    fix="list groups with `tide features list`",
                )
        records = {n: records[n] for n in only}
    out = []
    for r in records.values():
        spec = r.spec
        if not spec.online.enabled:
            continue
        out.append(
            GroupInfo(
                name=spec.name,
                record_identifier=spec.record_identifier,
                integral_id=spec.id_type == FeatureType.INTEGRAL,
                features=frozenset(spec.feature_names),
                event_time=spec.event_time,
            )
        )
    return out


def resolve_variant(
    ws: Workspace, ref: str, groups: Sequence[GroupInfo]
) -> tuple[ModelVersion, ServingModel, FeaturePlan]:
    """Resolve a registry reference, load the model (checked) and plan its features."""
    version = ws.registry.get_version(ref)
    model = load_serving_model(
        ws.artifacts, group=version.group, version=version.version, model_sha256=version.model_sha256
    )
    plan = plan_features(
        model.features, entity=model.entity, groups=groups, label=model.label, obj=f"model {model.ref}"
    )
    return version, model, plan


class Endpoints:
    """The endpoints of a workspace (`Endpoints(ws)`; the lead wires it as `ws.endpoints`)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- deploy --------------------------------------------------------------------------------------
    def deploy(
        self,
        name: str,
        model: str | None = None,
        *,
        variants: Sequence[Mapping[str, Any]] | None = None,
        shadow: str | None = None,
        shadow_percent: float = 100.0,
        capture: Mapping[str, Any] | None = None,
        limits: Mapping[str, Any] | None = None,
        require_api_key: bool = False,
        claim_flow: str | None = None,
        feature_groups: Sequence[str] | None = None,
        default_top_k: int = 3,
        poll_seconds: float = 1.0,
        override_approval: bool = False,
        update: bool = False,
        reason: str = "",
    ) -> EndpointInfo:
        """Deploy (or with `update=True` redeploy) an endpoint serving registry model versions.

        `model="group@production"` is one variant named `primary`; `variants=[{"name", "model",
        "weight", "shadow"}, …]` splits traffic; `shadow="group/4"` adds a shadow variant. Only Approved
        versions deploy unless `override_approval=True`, which is recorded in lineage with `reason`.
        """
        check_endpoint_name(name)
        specs: list[dict[str, Any]] = [dict(v) for v in variants or []]
        if model is not None:
            if specs:
                raise ValidationError(
                    "give either model= or variants=, not both",
                    obj=f"endpoint {name}",
                    field="model",
                    fix="drop one",
                )
            specs = [{"name": "primary", "model": model, "weight": 1.0}]
        if shadow is not None:
            specs.append({"name": "shadow", "model": shadow, "weight": 0.0, "shadow": True})
        if not specs:
            raise ValidationError(
                "no model to serve",
                obj=f"endpoint {name}",
                field="model",
                fix="pass model='group@production'",
            )
        config = parse_endpoint_config(
            {
                "name": name,
                "variants": specs,
                "shadow_percent": shadow_percent,
                "capture": dict(capture or {}),
                "limits": dict(limits or {}),
                "require_api_key": require_api_key,
                "default_top_k": default_top_k,
                "claim_flow": claim_flow,
                "feature_groups": list(feature_groups) if feature_groups is not None else None,
                "poll_seconds": poll_seconds,
            },
            obj=f"endpoint {name}",
        )
        groups = load_group_infos(self.ws, config.feature_groups)
        resolved: list[tuple[Any, ModelVersion, ServingModel, FeaturePlan]] = []
        for v in config.variants:
            version, loaded, plan = resolve_variant(self.ws, v.model, groups)
            if version.status != "Approved" and not override_approval:
                raise PolicyViolation(
                    f"model {version.ref} is {version.status}; only Approved versions deploy",
                    obj=f"endpoint {name}",
                    field=f"variants.{v.name}.model",
                    fix=f"approve it (`tide models approve {version.ref}`) or deploy with "
                    "override_approval=True (recorded in lineage)",
                )
            resolved.append((v, version, loaded, plan))
        entities = {m.entity for v, _, m, _ in resolved if not v.shadow}
        if len(entities) > 1:
            raise ValidationError(
                "the live variants' models are keyed by different entities "
                f"({', '.join(map(str, entities))})",
                obj=f"endpoint {name}",
                field="variants",
                fix="serve models of one entity behind one endpoint",
            )
        if config.claim_flow is not None:
            self._check_flow(config.claim_flow, name)
        elif any(m.spec.fitted_flow_ids for _, _, m, _ in resolved):
            found = self._find_claims_flow(resolved[0][2])
            if found is not None:
                config = config.model_copy(update={"claim_flow": found})
        overridden = [ver.ref for _, ver, _, _ in resolved if ver.status != "Approved"]
        params: dict[str, Any] = {
            "endpoint": name,
            "variants": [
                {
                    "name": v.name,
                    "model": v.model,
                    "version": ver.ref,
                    "status": ver.status,
                    "weight": v.weight,
                    "shadow": v.shadow,
                }
                for v, ver, _, _ in resolved
            ],
            "override_approval": bool(override_approval and overridden),
        }
        if overridden:
            params["overridden_versions"] = overridden
        if reason:
            params["reason"] = reason
        actor = current_user()
        with self.ws.lineage.action("serving.deploy", parameters=params) as act:
            for _, ver, _, _ in resolved:
                act.input(
                    ArtifactSpec("Model", ver.lineage_uri, name=ver.ref, properties={"status": ver.status})
                )
            with self.ws.metadata.session() as s:
                row = s.scalars(sa.select(EndpointRow).where(EndpointRow.name == name)).first()
                if row is not None and not update:
                    raise Conflict(
                        "exists already",
                        obj=f"endpoint {name}",
                        fix="pass update=True (CLI: --update) to redeploy it, or delete it first",
                    )
                if row is None:
                    row = EndpointRow(
                        name=name, config=config.to_json_dict(), status="Deployed", created_by=actor
                    )
                    s.add(row)
                else:
                    row.config = config.to_json_dict()
                    row.updated_at = utcnow()
                    row.variants.clear()
                    s.flush()
                for pos, (v, ver, _, _) in enumerate(resolved):
                    row.variants.append(
                        EndpointVariantRow(
                            position=pos,
                            name=v.name,
                            model_ref=v.model,
                            weight=v.weight,
                            shadow=v.shadow,
                            deployed_version=ver.version,
                            deployed_model_sha256=ver.model_sha256,
                            override_approval=ver.status != "Approved",
                        )
                    )
                s.flush()
                info = self._info(row)
            act.output(
                ArtifactSpec(
                    "Endpoint",
                    f"endpoint:{name}",
                    name=name,
                    properties={"models": [ver.ref for _, ver, _, _ in resolved]},
                )
            )
            act.set(variants=len(resolved), uncovered_features=sum(len(p.uncovered) for *_, p in resolved))
        return info

    def _check_flow(self, sha: str, name: str) -> None:
        from tideml.wrangle import FittedFlow

        try:
            text = self.ws.artifacts.get(sha).decode("utf-8")
        except NotFound as exc:
            raise NotFound(
                "no such fitted flow in the artifact store",
                obj=f"endpoint {name}",
                field="claim_flow",
                fix="pass the sha256 of a fitted flow stored by `tide wrangle run`",
            ) from exc
        FittedFlow.from_json(text)

    def _find_claims_flow(self, model: ServingModel) -> str | None:
        """The model's fitted flow named 'claims', if its spec lists one."""
        from tideml.wrangle import FittedFlow

        for ref in model.spec.fitted_flow_ids:
            sha = ref.removeprefix("sha256:")
            if not self.ws.artifacts.exists(sha):
                continue
            try:
                flow = FittedFlow.from_json(self.ws.artifacts.get(sha).decode("utf-8"))
            except (ValidationError, UnicodeDecodeError):
                continue
            if flow.name == "claims":
                return sha
        return None

    # -- read ----------------------------------------------------------------------------------------
    def _row(self, s: Any, name: str) -> EndpointRow:
        row: EndpointRow | None = s.scalars(sa.select(EndpointRow).where(EndpointRow.name == name)).first()
        if row is None:
            raise NotFound(
                "no such endpoint", obj=f"endpoint {name}", fix="list endpoints with `tide endpoints list`"
            )
        return row

    @staticmethod
    def _info(row: EndpointRow) -> EndpointInfo:
        return EndpointInfo(
            name=row.name,
            status=row.status,
            config=dict(row.config),
            variants=[
                {
                    "name": v.name,
                    "model": v.model_ref,
                    "weight": v.weight,
                    "shadow": v.shadow,
                    "deployed_version": v.deployed_version,
                    "deployed_model_sha256": v.deployed_model_sha256,
                    "override_approval": v.override_approval,
                }
                for v in row.variants
            ],
            created_at=row.created_at,
            updated_at=row.updated_at,
            created_by=row.created_by,
        )

    def get(self, name: str) -> EndpointInfo:
        with self.ws.metadata.session() as s:
            return self._info(self._row(s, name))

    def config(self, name: str) -> EndpointConfig:
        """The validated configuration of a deployed endpoint."""
        return parse_endpoint_config(self.get(name).config, obj=f"endpoint {name}")

    def list(self) -> list[EndpointInfo]:
        with self.ws.metadata.session() as s:
            return [self._info(r) for r in s.scalars(sa.select(EndpointRow).order_by(EndpointRow.name))]

    def describe(self, name: str) -> dict[str, Any]:
        """The stored endpoint plus what each variant serves now and where its features come from."""
        info = self.get(name)
        config = parse_endpoint_config(info.config, obj=f"endpoint {name}")
        groups = load_group_infos(self.ws, config.feature_groups)
        out = info.to_dict()
        live: list[dict[str, Any]] = []
        for v in config.variants:
            version, model, plan = resolve_variant(self.ws, v.model, groups)
            live.append(
                {
                    "name": v.name,
                    "model": v.model,
                    "serves": version.ref,
                    "status": version.status,
                    "threshold": model.threshold,
                    "features": len(model.features),
                    "plan": plan.to_dict(),
                }
            )
        out["resolved"] = live
        out["capture_folder"] = str(self.capture_folder(config))
        return out

    def capture_folder(self, config: EndpointConfig) -> Path:
        folder = config.capture.folder
        if folder:
            path = Path(folder).expanduser()
            return path if path.is_absolute() else (self.ws.root / path).resolve()
        return self.ws.root / "serving" / config.name / "capture"

    def delete(self, name: str, *, reason: str = "") -> None:
        """Delete an endpoint's configuration (running servers keep serving until stopped)."""
        with self.ws.lineage.action("serving.delete", parameters={"endpoint": name, "reason": reason}) as act:
            with self.ws.metadata.session() as s:
                row = self._row(s, name)
                s.delete(row)
            act.input(ArtifactSpec("Endpoint", f"endpoint:{name}", name=name))

    # -- API keys ------------------------------------------------------------------------------------
    def create_key(
        self,
        *,
        name: str = "",
        endpoint: str | None = None,
        rate_per_second: float = 100.0,
        burst: int | None = None,
    ) -> tuple[str, ApiKeyInfo]:
        """A new API key: returns (the key, shown only now, and its stored metadata)."""
        if not rate_per_second > 0:
            raise ValidationError("must be > 0", obj="API key", field="rate_per_second", fix="e.g. 100")
        burst = int(burst if burst is not None else max(1, round(rate_per_second * 2)))
        if burst < 1:
            raise ValidationError("must be >= 1", obj="API key", field="burst", fix="e.g. twice the rate")
        if endpoint is not None:
            check_endpoint_name(endpoint)
        key, key_id, digest = new_api_key()
        with self.ws.metadata.session() as s:
            row = ApiKeyRow(
                key_id=key_id,
                key_sha256=digest,
                name=name,
                endpoint=endpoint,
                rate_per_second=float(rate_per_second),
                burst=burst,
                created_by=current_user(),
            )
            s.add(row)
            s.flush()
            info = self._key_info(row)
        return key, info

    @staticmethod
    def _key_info(row: ApiKeyRow) -> ApiKeyInfo:
        return ApiKeyInfo(
            row.key_id,
            row.name,
            row.endpoint,
            row.rate_per_second,
            row.burst,
            row.created_at,
            row.created_by,
            row.revoked_at,
        )

    def list_keys(
        self, *, endpoint: str | None = None, include_revoked: bool = False
    ) -> builtins.list[ApiKeyInfo]:
        with self.ws.metadata.session() as s:
            q = sa.select(ApiKeyRow).order_by(ApiKeyRow.id)
            if endpoint is not None:
                q = q.where(sa.or_(ApiKeyRow.endpoint == endpoint, ApiKeyRow.endpoint.is_(None)))
            if not include_revoked:
                q = q.where(ApiKeyRow.revoked_at.is_(None))
            return [self._key_info(r) for r in s.scalars(q)]

    def revoke_key(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key; running servers stop accepting it within their poll interval."""
        with self.ws.metadata.session() as s:
            row = s.scalars(sa.select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).first()
            if row is None:
                raise NotFound(
                    "no such API key", obj=f"API key {key_id}", fix="list keys with `tide keys list`"
                )
            if row.revoked_at is not None:
                raise Conflict("is already revoked", obj=f"API key {key_id}", fix="nothing to do")
            row.revoked_at = utcnow()
            s.flush()
            return self._key_info(row)

    def key_records(self) -> builtins.list[KeyRecord]:
        """Every key's hash and limits, for a server's gate."""
        with self.ws.metadata.session() as s:
            return [
                KeyRecord(
                    r.key_id, r.key_sha256, r.endpoint, r.rate_per_second, r.burst, r.revoked_at is not None
                )
                for r in s.scalars(sa.select(ApiKeyRow))
            ]
