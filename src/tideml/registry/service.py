"""The model registry: groups, versions with evidence, approval with an append-only audit trail, aliases.

Every state change happens in one transaction that also appends its audit event; rows carry a version
counter, so two approvals or alias moves racing on PostgreSQL resolve to one winner and a `Conflict`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tideml.errors import Conflict, NotFound, PolicyViolation, ValidationError
from tideml.lineage import ArtifactSpec, current_user
from tideml.meta.registry_tables import ModelAlias, ModelAuditEvent, ModelGroupRow, ModelVersionRow
from tideml.registry.policy import check_policy, parse_rule

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["AuditEvent", "ModelGroup", "ModelVersion", "Registry", "Status"]

Status = Literal["PendingManualApproval", "Approved", "Rejected"]
STATUSES: tuple[Status, ...] = ("PendingManualApproval", "Approved", "Rejected")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Evidence kinds a version may carry, each an artifact in the store, with its lineage type.
EVIDENCE_TYPES: dict[str, str] = {
    "dataset": "Dataset",
    "evaluation_report": "Report",
    "bias_report": "Report",
    "explanation_report": "Report",
    "drift_baseline": "Report",
    "model_spec": "Model",
}
Hook = Callable[["ModelVersion"], None]


@dataclass(frozen=True)
class ModelGroup:
    name: str
    description: str
    policy: list[str]
    required_approvals: int
    created_at: datetime


@dataclass(frozen=True)
class ModelVersion:
    """A read-only view of one version; change it only through `Registry` methods."""

    group: str
    version: int
    model_sha256: str
    status: Status
    metrics: dict[str, float]
    evidence: dict[str, str]
    tags: dict[str, str]
    description: str
    approvals: list[str]
    created_at: datetime
    created_by: str
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def lineage_uri(self) -> str:
        return f"model:{self.group}/{self.version}"


@dataclass(frozen=True)
class AuditEvent:
    group: str
    version: int | None
    event: str
    actor: str
    reason: str
    details: dict[str, Any]
    at: datetime


def _audit(
    s: Session,
    *,
    group_id: int,
    event: str,
    actor: str,
    version_id: int | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event to the audit trail, in the transaction of the change it records."""
    s.add(
        ModelAuditEvent(
            group_id=group_id,
            version_id=version_id,
            event=event,
            actor=actor,
            reason=reason,
            details=details or {},
        )
    )


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise ValidationError(
            f"{name!r} is not a valid name",
            obj=what,
            field="name",
            fix="use lowercase letters, digits and '-', starting with a letter or digit (max 63)",
        )


class Registry:
    """Model groups and versions of one workspace (`ws.registry`)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._hooks: dict[str, list[Hook]] = {}

    # -- hooks -------------------------------------------------------------------------------------
    def on(self, event: Literal["registered", "approved", "rejected"], hook: Hook) -> None:
        """Call `hook(version)` after the event commits (e.g. deploy on approval)."""
        self._hooks.setdefault(event, []).append(hook)

    def _fire(self, event: str, version: ModelVersion) -> None:
        for hook in self._hooks.get(event, []):
            hook(version)

    # -- groups ------------------------------------------------------------------------------------
    def create_group(
        self,
        name: str,
        *,
        description: str = "",
        policy: list[str] | None = None,
        required_approvals: int = 1,
        exist_ok: bool = False,
    ) -> ModelGroup:
        """Create a model group with an optional approval policy (rules over version metrics)."""
        _check_name(name, "model group")
        rules = list(policy or [])
        for rule in rules:
            parse_rule(rule)
        if required_approvals < 1:
            raise ValidationError(
                "must be at least 1", obj=f"model group {name}", field="required_approvals", fix="use 1 or 2"
            )
        with self.ws.metadata.session() as s:
            existing = self._group_row(s, name, missing_ok=True)
            if existing is not None:
                if not exist_ok:
                    raise Conflict("exists already", obj=f"model group {name}", fix="pick another name")
                return self._group_view(existing)
            row = ModelGroupRow(
                name=name, description=description, policy=rules, required_approvals=required_approvals
            )
            s.add(row)
            s.flush()
            _audit(
                s,
                group_id=row.id,
                event="group_created",
                actor=current_user(),
                details={"policy": rules, "required_approvals": required_approvals},
            )
            return self._group_view(row)

    def update_group(
        self,
        name: str,
        *,
        policy: list[str] | None = None,
        required_approvals: int | None = None,
        reason: str = "",
    ) -> ModelGroup:
        """Change a group's policy or quorum; the change is audited."""
        for rule in policy or []:
            parse_rule(rule)
        with self.ws.metadata.session() as s:
            row = self._group_row(s, name)
            if policy is not None:
                row.policy = list(policy)
            if required_approvals is not None:
                row.required_approvals = required_approvals
            _audit(
                s,
                group_id=row.id,
                event="group_updated",
                actor=current_user(),
                reason=reason,
                details={"policy": row.policy, "required_approvals": row.required_approvals},
            )
            s.flush()
            return self._group_view(row)

    def get_group(self, name: str) -> ModelGroup:
        with self.ws.metadata.session() as s:
            return self._group_view(self._group_row(s, name))

    def list_groups(self) -> list[ModelGroup]:
        with self.ws.metadata.session() as s:
            rows = s.scalars(sa.select(ModelGroupRow).order_by(ModelGroupRow.name))
            return [self._group_view(r) for r in rows]

    # -- versions ----------------------------------------------------------------------------------
    def register(
        self,
        group: str,
        model_sha256: str,
        *,
        metrics: Mapping[str, float] | None = None,
        evidence: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Register a model artifact as the group's next version, PendingManualApproval.

        `evidence` maps kinds (dataset, evaluation_report, bias_report, explanation_report,
        drift_baseline, model_spec) to artifact hashes that must exist in the store. The group is
        created if it does not exist.
        """
        model_sha256 = model_sha256.removeprefix("sha256:")
        evidence = {k: v.removeprefix("sha256:") for k, v in (evidence or {}).items()}
        clean_metrics = self._check_metrics(group, metrics or {})
        if not self.ws.artifacts.exists(model_sha256):
            raise NotFound(
                "no such artifact",
                obj=f"model {model_sha256}",
                field="model_sha256",
                fix="store the model with ws.put_artifact (or train it with ws.train) first",
            )
        for kind, digest in evidence.items():
            if kind not in EVIDENCE_TYPES:
                raise ValidationError(
                    f"unknown evidence kind {kind!r}",
                    obj=f"model group {group}",
                    field=f"evidence.{kind}",
                    fix=f"use one of {', '.join(EVIDENCE_TYPES)}",
                )
            if not self.ws.artifacts.exists(digest):
                raise NotFound(
                    "no such artifact",
                    obj=f"evidence {kind} {digest}",
                    field=f"evidence.{kind}",
                    fix="store the report or dataset in the workspace first",
                )
        self.create_group(group, exist_ok=True)
        actor = current_user()
        with self.ws.lineage.action("registry.register", parameters={"group": group}) as act:
            model = act.input(ArtifactSpec("Model", f"sha256:{model_sha256}", sha256=model_sha256))
            for kind, digest in sorted(evidence.items()):
                act.input(ArtifactSpec(EVIDENCE_TYPES[kind], f"sha256:{digest}", sha256=digest, name=kind))
            with self.ws.metadata.session() as s:
                g = self._group_row(s, group)
                latest = s.scalar(
                    sa.select(sa.func.max(ModelVersionRow.version)).where(ModelVersionRow.group_id == g.id)
                )
                row = ModelVersionRow(
                    group_id=g.id,
                    version=(latest or 0) + 1,
                    model_sha256=model_sha256,
                    status="PendingManualApproval",
                    metrics=clean_metrics,
                    evidence=dict(evidence),
                    tags=dict(tags or {}),
                    description=description,
                    approvals=[],
                    created_by=actor,
                )
                s.add(row)
                s.flush()  # a concurrent registration of the same number fails here with Conflict
                _audit(
                    s,
                    group_id=g.id,
                    version_id=row.id,
                    event="registered",
                    actor=actor,
                    details={"model_sha256": model_sha256},
                )
                view = self._version_view(s, g, row)
            act.output(
                ArtifactSpec("Model", view.lineage_uri, name=view.ref, properties={"status": view.status}),
                derived_from=model,
            )
            act.set(version=view.version)
        self._fire("registered", view)
        return view

    def _check_metrics(self, group: str, metrics: Mapping[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValidationError(
                    f"{value!r} is not a finite number",
                    obj=f"model group {group}",
                    field=f"metrics.{key}",
                    fix="pass metrics as finite floats",
                )
            out[key] = float(value)
        return out

    def get_version(self, ref: str) -> ModelVersion:
        """Resolve `group/3`, `group@alias` or `group` (the latest version)."""
        with self.ws.metadata.session() as s:
            g, row = self._resolve(s, ref)
            return self._version_view(s, g, row)

    def list_versions(self, group: str, *, status: Status | None = None) -> list[ModelVersion]:
        """All versions of a group, oldest first (one query for versions, one for aliases)."""
        with self.ws.metadata.session() as s:
            g = self._group_row(s, group)
            q = sa.select(ModelVersionRow).where(ModelVersionRow.group_id == g.id)
            if status is not None:
                q = q.where(ModelVersionRow.status == status)
            rows = list(s.scalars(q.order_by(ModelVersionRow.version)))
            aliases: dict[int, list[str]] = {}
            for a in s.scalars(sa.select(ModelAlias).where(ModelAlias.group_id == g.id)):
                aliases.setdefault(a.version_id, []).append(a.alias)
            return [self._to_view(g, r, sorted(aliases.get(r.id, []))) for r in rows]

    # -- approval ----------------------------------------------------------------------------------
    def approve(self, ref: str, *, actor: str | None = None, reason: str = "") -> ModelVersion:
        """Approve a version: checks the group's policy against its evidence and counts reviewers."""
        actor = actor or current_user()
        with self.ws.lineage.action("registry.approve", parameters={"ref": ref, "actor": actor}) as act:
            with self.ws.metadata.session() as s:
                g, row = self._resolve(s, ref)
                if row.status == "Approved":
                    raise Conflict(
                        "is already Approved",
                        obj=f"model {g.name}/{row.version}",
                        fix="nothing to do; another reviewer may have approved it just now",
                    )
                failed = [r for r in check_policy(list(g.policy), row.metrics) if not r.passed]
                if failed:
                    _audit(
                        s,
                        group_id=g.id,
                        version_id=row.id,
                        event="approval_refused",
                        actor=actor,
                        reason=reason,
                        details={"failed": [f.rule.text for f in failed]},
                    )
                    s.commit()  # the refusal itself is part of the audit trail
                    first = failed[0]
                    raise PolicyViolation(
                        f"approval refused: rule '{first.rule.text}' failed ({first.detail})",
                        obj=f"model {g.name}/{row.version}",
                        fix="register a version that meets the group's policy, or change the policy",
                    )
                if actor in row.approvals:
                    raise Conflict(
                        f"{actor} has approved it already",
                        obj=f"model {g.name}/{row.version}",
                        fix="a second approval must come from another reviewer",
                    )
                row.approvals = [*row.approvals, actor]
                done = len(row.approvals) >= g.required_approvals
                event = "approved" if done else "approval_vote"
                if done:
                    row.status = "Approved"
                _audit(
                    s,
                    group_id=g.id,
                    version_id=row.id,
                    event=event,
                    actor=actor,
                    reason=reason,
                    details={"approvals": row.approvals, "required": g.required_approvals},
                )
                s.flush()  # row_version check: a racing approval raises Conflict here
                view = self._version_view(s, g, row)
            act.input(ArtifactSpec("Model", view.lineage_uri, name=view.ref))
            act.set(status=view.status)
        if view.status == "Approved":
            self._fire("approved", view)
        return view

    def reject(self, ref: str, *, actor: str | None = None, reason: str = "") -> ModelVersion:
        """Reject a version (also revokes an approval); aliases pointing at it are removed."""
        actor = actor or current_user()
        with self.ws.metadata.session() as s:
            g, row = self._resolve(s, ref)
            if row.status == "Rejected":
                raise Conflict(
                    "is already Rejected", obj=f"model {g.name}/{row.version}", fix="nothing to do"
                )
            row.status = "Rejected"
            row.approvals = []
            _audit(s, group_id=g.id, version_id=row.id, event="rejected", actor=actor, reason=reason)
            for alias in s.scalars(sa.select(ModelAlias).where(ModelAlias.version_id == row.id)):
                _audit(
                    s,
                    group_id=g.id,
                    version_id=row.id,
                    event="alias_removed",
                    actor=actor,
                    reason="version rejected",
                    details={"alias": alias.alias},
                )
                s.delete(alias)
            s.flush()
            view = self._version_view(s, g, row)
        self._fire("rejected", view)
        return view

    # -- aliases -----------------------------------------------------------------------------------
    def set_alias(
        self, group: str, alias: str, version: int, *, actor: str | None = None, reason: str = ""
    ) -> ModelVersion:
        """Point `group@alias` at an approved version (moving it if it exists)."""
        _check_name(alias, "alias")
        actor = actor or current_user()
        with self.ws.metadata.session() as s:
            g, row = self._resolve(s, f"{group}/{version}", lock=True)
            if row.status != "Approved":
                raise PolicyViolation(
                    f"only an Approved version can hold an alias; this one is {row.status}",
                    obj=f"model {group}/{version}",
                    field="alias",
                    fix=f"approve it first: tide models approve {group}/{version}",
                )
            current = s.scalars(
                sa.select(ModelAlias).where(ModelAlias.group_id == g.id, ModelAlias.alias == alias)
            ).first()
            previous = None
            if current is None:
                s.add(ModelAlias(group_id=g.id, alias=alias, version_id=row.id))
            else:
                previous = current.version_id
                current.version_id = row.id
            _audit(
                s,
                group_id=g.id,
                version_id=row.id,
                event="alias_set",
                actor=actor,
                reason=reason,
                details={"alias": alias, "previous_version_id": previous},
            )
            s.flush()  # racing moves: one wins, the other gets Conflict (row version or unique key)
            return self._version_view(s, g, row)

    def remove_alias(self, group: str, alias: str, *, actor: str | None = None, reason: str = "") -> None:
        actor = actor or current_user()
        with self.ws.metadata.session() as s:
            g = self._group_row(s, group)
            current = s.scalars(
                sa.select(ModelAlias).where(ModelAlias.group_id == g.id, ModelAlias.alias == alias)
            ).first()
            if current is None:
                raise NotFound(
                    "no such alias", obj=f"model {group}@{alias}", fix="list aliases with tide models show"
                )
            _audit(
                s,
                group_id=g.id,
                version_id=current.version_id,
                event="alias_removed",
                actor=actor,
                reason=reason,
                details={"alias": alias},
            )
            s.delete(current)

    # -- history -----------------------------------------------------------------------------------
    def history(self, group: str, version: int | None = None) -> list[AuditEvent]:
        """The audit trail of a group (or one version), oldest first."""
        with self.ws.metadata.session() as s:
            g = self._group_row(s, group)
            q = (
                sa.select(ModelAuditEvent, ModelVersionRow.version)
                .outerjoin(ModelVersionRow, ModelAuditEvent.version_id == ModelVersionRow.id)
                .where(ModelAuditEvent.group_id == g.id)
            )
            if version is not None:
                q = q.where(ModelVersionRow.version == version)
            rows = s.execute(q.order_by(ModelAuditEvent.id)).all()
            return [AuditEvent(g.name, v, e.event, e.actor, e.reason, dict(e.details), e.at) for e, v in rows]

    def live_at(self, group: str, alias: str, when: datetime) -> int | None:
        """Which version held `group@alias` at `when` (None if none did)."""
        live: int | None = None
        for e in self.history(group):
            if e.at > when:
                break
            if e.details.get("alias") == alias:
                live = e.version if e.event == "alias_set" else None
        return live

    # -- helpers -----------------------------------------------------------------------------------
    def _group_row(self, s: Session, name: str, *, missing_ok: bool = False) -> ModelGroupRow:
        row = s.scalars(sa.select(ModelGroupRow).where(ModelGroupRow.name == name)).first()
        if row is None and not missing_ok:
            raise NotFound(
                "no such model group", obj=f"model group {name}", fix="list groups with `tide models list`"
            )
        return row  # type: ignore[return-value]

    def _resolve(self, s: Session, ref: str, *, lock: bool = False) -> tuple[ModelGroupRow, ModelVersionRow]:
        ref = ref.removeprefix("model:")
        q = sa.select(ModelVersionRow)
        if lock:
            q = q.with_for_update()
        if "@" in ref:
            name, alias = ref.split("@", 1)
            g = self._group_row(s, name)
            a = s.scalars(
                sa.select(ModelAlias).where(ModelAlias.group_id == g.id, ModelAlias.alias == alias)
            ).first()
            if a is None:
                raise NotFound(
                    "no such alias",
                    obj=f"model {ref}",
                    fix=f"set it with `tide models alias {name} {alias} VERSION`",
                )
            row = s.scalars(q.where(ModelVersionRow.id == a.version_id)).one()
            return g, row
        name, _, number = ref.partition("/")
        g = self._group_row(s, name)
        q = q.where(ModelVersionRow.group_id == g.id)
        if number:
            if not number.isdigit():
                raise ValidationError(
                    f"{number!r} is not a version number",
                    obj=f"model {ref}",
                    field="version",
                    fix="write group/3, group@alias or group",
                )
            found = s.scalars(q.where(ModelVersionRow.version == int(number))).first()
        else:
            found = s.scalars(q.order_by(ModelVersionRow.version.desc()).limit(1)).first()
        if found is None:
            raise NotFound(
                "no such version", obj=f"model {ref}", fix=f"list versions with `tide models show {name}`"
            )
        return g, found

    def _version_view(self, s: Session, g: ModelGroupRow, row: ModelVersionRow) -> ModelVersion:
        aliases = sorted(s.scalars(sa.select(ModelAlias.alias).where(ModelAlias.version_id == row.id)))
        return self._to_view(g, row, aliases)

    @staticmethod
    def _to_view(g: ModelGroupRow, row: ModelVersionRow, aliases: list[str]) -> ModelVersion:
        return ModelVersion(
            group=g.name,
            version=row.version,
            model_sha256=row.model_sha256,
            status=row.status,  # type: ignore[arg-type]
            metrics=dict(row.metrics),
            evidence=dict(row.evidence),
            tags=dict(row.tags),
            description=row.description,
            approvals=list(row.approvals),
            created_at=row.created_at,
            created_by=row.created_by,
            aliases=aliases,
        )

    @staticmethod
    def _group_view(row: ModelGroupRow) -> ModelGroup:
        return ModelGroup(row.name, row.description, list(row.policy), row.required_approvals, row.created_at)
