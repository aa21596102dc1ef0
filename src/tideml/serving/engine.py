"""The request path, free of HTTP: parse a payload, fetch or build features, score, explain, capture.

`InferenceEngine.invoke(body, content_type, …)` accepts

* `{"policy_id": 42}`: the policy's features come from the online groups (one round trip per store);
* `{"policy_id": 42, "claim": {…raw claim…}}`: the claim goes through the fitted claims flow, the rest
  of the features (the customer's) come from the online store;
* `{"features": {…}}`: model-ready features, exactly the model's;
* a list of such records, and `text/csv` rows in the model's feature order (the article's format);

and returns the probability, the decision at the version's threshold, the model version and the
variant, plus the top-k SHAP reasons on request. Every refusal is a `TideError` naming the field; the
HTTP layer turns it into a 4xx (or a 503 when a store is down). The label is never read: it is dropped
from raw claims and is never a feature the model or the lookup plan asks for.
"""

from __future__ import annotations

import bisect
import math
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tideml.errors import NotFound, TideError, ValidationError
from tideml.serving.capture import CaptureWriter
from tideml.serving.errors import RequestError
from tideml.serving.metrics import Metrics
from tideml.serving.model import ServingModel
from tideml.serving.sources import FeatureLookup, FeaturePlan, RecordTransformer
from tideml.serving.spec import EndpointConfig, VariantConfig

__all__ = ["InferenceEngine", "Invocation", "Variant"]

_F32_MAX = 3.4028234663852886e38
Row = list[float | None]


@dataclass
class Variant:
    """A live or shadow variant: its configuration and the model it serves right now.

    `active` holds (model, plan) as one tuple, so a switch to a new version replaces both in one
    assignment and a request in flight keeps the pair it started with.
    """

    config: VariantConfig
    active: tuple[ServingModel, FeaturePlan]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def model(self) -> ServingModel:
        return self.active[0]


@dataclass
class Invocation:
    """An answer ready to send: status, body, media type and headers."""

    body: bytes
    media_type: str
    headers: dict[str, str]
    variant: str
    status: int = 200


@dataclass(slots=True)
class _Rec:
    path: str
    entity_id: Any = None
    claim: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    row: Row | None = None
    transformed: dict[str, Any] | None = None
    keys: dict[str, str] = field(default_factory=dict)


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(v), type(v).__name__
    )


def _invalid(field_path: str, message: str, fix: str, obj: str = "request") -> RequestError:
    return RequestError(422, message, code="validation_error", field=field_path, fix=fix, obj=obj)


def _number(v: Any, field_path: str) -> float | None:
    t = type(v)
    if t is float or t is int:
        if not -_F32_MAX <= v <= _F32_MAX:  # also refuses NaN and infinities
            raise _invalid(field_path, f"{v!r} is out of range", "send a finite number within float32 range")
        return float(v)
    if t is bool:
        return 1.0 if v else 0.0
    if v is None:
        return None
    raise _invalid(
        field_path, f"must be a number, got {_type_name(v)}", "send a number (or null for missing)"
    )


def _stored_number(v: Any, group: str, name: str) -> float | None:
    t = type(v)
    if t is float or t is int or t is bool or v is None:
        return None if v is None else float(v)
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise ValidationError(
            f"the stored value {v!r} is not a number",
            obj=f"feature group {group}",
            field=name,
            fix="encode the feature as a number in the flow that feeds the group",
        ) from None
    return out if math.isfinite(out) else None


def _id_key(value: Any, integral: bool, field_path: str) -> str:
    if integral:
        if type(value) is int:
            return str(value)
        if type(value) is str and value.strip().lstrip("-").isdigit():
            return str(int(value))
        raise _invalid(field_path, f"must be an integer, got {_type_name(value)}", "send the integer id")
    if type(value) is int or (type(value) is str and value):
        return str(value)
    raise _invalid(
        field_path, f"must be a string or an integer, got {_type_name(value)}", "send the record id"
    )


class InferenceEngine:
    """Scores requests for one endpoint; swappable models, pluggable feature sources and capture."""

    def __init__(
        self,
        config: EndpointConfig,
        variants: Sequence[Variant],
        *,
        lookup: FeatureLookup | None = None,
        transformer: RecordTransformer | None = None,
        capture: CaptureWriter | None = None,
        metrics: Metrics | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.variants = {v.name: v for v in variants}
        self.live = [v for v in variants if not v.config.shadow]
        self.shadows = [v for v in variants if v.config.shadow]
        total = sum(v.config.weight for v in self.live)
        running, cum = 0.0, []
        for v in self.live:
            running += v.config.weight / total
            cum.append(running)
        self._cum = cum
        self.lookup = lookup
        self.transformer = transformer
        self.capture = capture
        self.metrics = metrics or Metrics()
        self._rng = random.Random(seed)
        self._capture_rate = config.capture.sampling_percent / 100.0 if config.capture.enabled else 0.0
        self._shadow_rate = config.shadow_percent / 100.0
        self._limits = config.limits
        self._transform_cols = frozenset(transformer.columns) if transformer is not None else frozenset()

    # -- model switching ---------------------------------------------------------------------------
    def swap(self, variant: str, model: ServingModel, plan: FeaturePlan) -> None:
        """Serve `model` for `variant` from the next request on (requests in flight finish on the old one)."""
        self.variants[variant].active = (model, plan)

    def models(self) -> dict[str, str]:
        return {name: v.model.ref for name, v in self.variants.items()}

    # -- parsing -----------------------------------------------------------------------------------
    def _parse_json(self, body: bytes) -> tuple[list[_Rec], bool]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(
                400, f"malformed JSON ({exc})", code="malformed_json", field="body", fix="send valid JSON"
            ) from None
        if isinstance(doc, dict):
            return [self._record(doc, "")], False
        if isinstance(doc, list):
            if not doc:
                raise _invalid("body", "the list of records is empty", "send at least one record")
            if len(doc) > self._limits.max_batch:
                raise RequestError(
                    413,
                    f"{len(doc)} records in one request; the limit is {self._limits.max_batch}",
                    code="batch_too_large",
                    field="body",
                    fix=f"split the request into batches of at most {self._limits.max_batch}",
                )
            out = []
            for i, item in enumerate(doc):
                if not isinstance(item, dict):
                    raise _invalid(
                        f"[{i}]", f"must be an object, got {_type_name(item)}", "send a list of records"
                    )
                out.append(self._record(item, f"[{i}]."))
            return out, True
        raise _invalid("body", f"must be an object or a list of objects, got {_type_name(doc)}", _FORMS)

    def _record(self, doc: dict[str, Any], path: str) -> _Rec:
        entity = self.live[0].model.entity
        if "features" in doc:
            for key in doc:
                if key != "features":
                    raise _invalid(
                        f"{path}{key}", "unknown field next to 'features'", "send only {'features': {…}}"
                    )
            feats = doc["features"]
            if not isinstance(feats, dict):
                raise _invalid(f"{path}features", f"must be an object, got {_type_name(feats)}", _FORMS)
            return _Rec(path, features=feats)
        if entity is None:
            raise _invalid(
                f"{path}features", "missing; this model has no entity to look features up by", _FORMS
            )
        if entity not in doc:
            unknown = [k for k in doc if k != "claim"]
            if unknown:
                raise _invalid(f"{path}{unknown[0]}", "unknown field", _FORMS)
            raise _invalid(f"{path}{entity}", "missing", _FORMS)
        ident = doc[entity]
        if not (type(ident) is int or (type(ident) is str and ident.strip())):
            raise _invalid(
                f"{path}{entity}", f"must be an integer or a string, got {_type_name(ident)}", _FORMS
            )
        rec = _Rec(path, entity_id=ident)
        for key, value in doc.items():
            if key == entity:
                continue
            if key != "claim":
                raise _invalid(f"{path}{key}", "unknown field", _FORMS)
            if not isinstance(value, dict):
                raise _invalid(
                    f"{path}claim", f"must be an object, got {_type_name(value)}", "send the raw claim"
                )
            rec.claim = value
        return rec

    def _parse_csv(self, body: bytes, model: ServingModel) -> list[_Rec]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(
                400, "the CSV body is not UTF-8", code="malformed_csv", field="body", fix="send UTF-8"
            ) from None
        lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
        if lines and [c.strip() for c in lines[0].split(",")] == list(model.features):
            lines = lines[1:]  # a header row naming the model's features, in order
        if not lines:
            raise _invalid("body", "no CSV rows", "send one row of feature values per line")
        if len(lines) > self._limits.max_batch:
            raise RequestError(
                413,
                f"{len(lines)} rows in one request; the limit is {self._limits.max_batch}",
                code="batch_too_large",
                field="body",
                fix=f"split the request into batches of at most {self._limits.max_batch}",
            )
        width = len(model.features)
        recs = []
        for r, line in enumerate(lines, start=1):
            cells = line.split(",")
            if len(cells) != width:
                raise _invalid(
                    f"row {r}",
                    f"has {len(cells)} values; the model takes {width}",
                    "send the features in the model's order (GET /model lists them), no label, no id",
                )
            row: Row = []
            for c, cell in enumerate(cells):
                cell = cell.strip()
                if not cell:
                    row.append(None)
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    raise _invalid(
                        f"row {r}, column {c + 1} ({model.features[c]})",
                        f"{cell[:40]!r} is not a number",
                        "send numbers",
                    ) from None
                row.append(_number(value, f"row {r}, column {c + 1} ({model.features[c]})"))
            recs.append(_Rec(f"row {r}.", row=row))
        return recs

    # -- features --------------------------------------------------------------------------------
    def _transform(self, recs: list[_Rec], model: ServingModel) -> None:
        entity = model.entity
        for rec in recs:
            if rec.claim is None:
                continue
            if self.transformer is None:
                raise _invalid(
                    f"{rec.path}claim",
                    "this endpoint has no claims flow to transform a raw claim",
                    "send {'policy_id': …} or {'features': {…}}, "
                    "or redeploy with claim_flow=<fitted flow sha256>",
                )
            claim = dict(rec.claim)
            if model.label is not None:
                claim[model.label] = None  # the label is never read (the flow gets a null, not the value)
            if entity is not None:
                if entity in claim and claim[entity] != rec.entity_id:
                    raise _invalid(
                        f"{rec.path}claim.{entity}", f"differs from the request's {entity}", "send one id"
                    )
                claim[entity] = rec.entity_id
            try:
                out = self.transformer.transform_record(claim)
            except ValidationError as exc:
                raise _invalid(
                    f"{rec.path}claim.{exc.field}" if exc.field else f"{rec.path}claim",
                    exc.message,
                    exc.fix or "correct the claim",
                ) from None
            except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
                raise _invalid(
                    f"{rec.path}claim", f"cannot transform the claim ({exc})", "send the raw claim's columns"
                ) from None
            if out is None:
                raise _invalid(
                    f"{rec.path}claim", "the claims flow drops this claim", "check the claim's values"
                )
            rec.transformed = out

    def _keys(self, recs: list[_Rec], plans: Sequence[FeaturePlan]) -> list[tuple[str, str]]:
        wanted: dict[tuple[str, str], None] = {}
        cols = self._transform_cols
        for rec in recs:
            if rec.features is not None or rec.row is not None:
                continue
            for plan in plans:
                for src in plan.sources:
                    if src.group in rec.keys:
                        continue
                    if rec.transformed is not None and all(name in cols for _, name in src.columns):
                        continue
                    key = _id_key(rec.entity_id, src.integral_id, f"{rec.path}{plan.entity}")
                    rec.keys[src.group] = key
                    wanted[(src.group, key)] = None
        return list(wanted)

    def _rows(
        self, recs: list[_Rec], model: ServingModel, plan: FeaturePlan, fetched: Mapping[tuple[str, str], Any]
    ) -> list[Row]:
        rows: list[Row] = []
        width = len(model.features)
        index = model.index
        for rec in recs:
            if rec.row is not None:
                if len(rec.row) != width:
                    raise _invalid(
                        rec.path.rstrip("."),
                        f"has {len(rec.row)} values; the model takes {width}",
                        "send the model's features",
                    )
                rows.append(rec.row)
                continue
            if rec.features is not None:
                feats = rec.features
                if len(feats) != width or any(k not in index for k in feats):
                    for k in feats:
                        if k not in index:
                            raise _invalid(
                                f"{rec.path}features.{k}",
                                f"is not a feature of model {model.ref}",
                                "send exactly the model's features (GET /model)",
                            )
                    for f in model.features:
                        if f not in feats:
                            raise _invalid(
                                f"{rec.path}features.{f}",
                                "missing",
                                "send every model feature (null for missing values)",
                            )
                rows.append([_number(feats[f], f"{rec.path}features.{f}") for f in model.features])
                continue
            row: Row = [None] * width
            tr = rec.transformed
            for src in plan.sources:
                key = rec.keys.get(src.group)
                if key is None:
                    continue  # every feature of this group comes from the transformed claim
                data = fetched.get((src.group, key))
                if data is None:
                    raise NotFound(
                        f"no online record for {plan.entity} {rec.entity_id!r} in feature group {src.group}",
                        obj="request",
                        field=f"{rec.path}{plan.entity}",
                        fix=f"ingest the record into the online group {src.group}, "
                        "or send {'features': {…}}",
                    )
                for i, name in src.columns:
                    if name in data:
                        row[i] = _stored_number(data[name], src.group, name)
            missing = [f for f in plan.uncovered if tr is None or f not in tr]
            if missing:
                raise _invalid(
                    f"{rec.path}{plan.entity}",
                    f"model feature {missing[0]!r} is in no online group"
                    + ("" if tr is None else " nor in the claims flow output"),
                    "send {'features': {…}}, ingest the feature into an online group, "
                    "or redeploy with feature_groups",
                )
            if tr is not None:
                for name, value in tr.items():
                    j = index.get(name)
                    if j is not None:
                        row[j] = _number(value, f"{rec.path}claim → {name}")
            rows.append(row)
        return rows

    # -- the request -------------------------------------------------------------------------------
    def choose(self, target: str | None) -> Variant:
        if target:
            v = self.variants.get(target)
            if v is None or v.config.shadow:
                names = ", ".join(x.name for x in self.live)
                raise _invalid(
                    "X-Tide-Target-Variant", f"no live variant named {target!r}", f"use one of {names}"
                )
            return v
        if len(self.live) == 1:
            return self.live[0]
        return self.live[min(bisect.bisect_left(self._cum, self._rng.random()), len(self.live) - 1)]

    def invoke(
        self,
        body: bytes,
        content_type: str | None = "application/json",
        *,
        accept: str | None = None,
        explain: bool = False,
        top_k: int | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
    ) -> Invocation:
        """Answer one invocation, or raise a `TideError` naming what is wrong with it."""
        t0 = time.perf_counter()
        variant = self.choose(target_variant)
        model, plan = variant.active
        ctype = (content_type or "application/json").split(";", 1)[0].strip().lower()
        if ctype in ("application/json", "application/jsonlines", "text/json", ""):
            recs, many = self._parse_json(body)
            csv = False
        elif ctype == "text/csv":
            recs, many, csv = self._parse_csv(body, model), True, True
        else:
            raise RequestError(
                415,
                f"unsupported content type {ctype!r}",
                code="unsupported_media_type",
                field="Content-Type",
                fix="send application/json or text/csv",
            )
        k = self.config.default_top_k if top_k is None else top_k
        if explain and not 1 <= k <= self._limits.max_top_k:
            raise _invalid(
                "top_k", f"must be between 1 and {self._limits.max_top_k}", "ask for fewer reasons"
            )
        shadows = self.shadows if self.shadows and self._rng.random() < self._shadow_rate else []
        t1 = time.perf_counter()
        self._transform(recs, model)
        t2 = time.perf_counter()
        fetched: dict[tuple[str, str], Any] = {}
        plans = [plan, *(s.active[1] for s in shadows)]
        keys = self._keys(recs, plans)
        if keys:
            if self.lookup is None:
                raise _invalid(
                    f"{recs[0].path}{plan.entity}",
                    "this endpoint has no online store to look features up in",
                    "send {'features': {…}}",
                )
            fetched = dict(zip(keys, self.lookup.lookup(keys), strict=True))
        t3 = time.perf_counter()
        rows = self._rows(recs, model, plan, fetched)
        probs = model.predict_rows(rows)
        t4 = time.perf_counter()
        reasons = model.explain_rows(rows, k) if explain else None
        t5 = time.perf_counter()
        iid = inference_id or uuid.uuid4().hex
        preds = []
        for i, (row, p) in enumerate(zip(rows, probs, strict=True)):
            thr = model.threshold_for(row)
            item: dict[str, Any] = {"probability": p, "decision": int(p >= thr), "threshold": thr}
            if reasons is not None:
                item["reasons"] = [r.to_dict() for r in reasons[i]]
            preds.append(item)
        m = self.metrics
        vlabel = (("variant", variant.name),)
        m.inc("tide_records_total", vlabel, len(rows))
        m.observe("tide_stage_duration_seconds", (("stage", "lookup"),), t3 - t2)
        m.observe("tide_stage_duration_seconds", (("stage", "transform"),), t2 - t1)
        m.observe("tide_stage_duration_seconds", (("stage", "model"),), t4 - t3)
        if explain:
            m.observe("tide_stage_duration_seconds", (("stage", "explain"),), t5 - t4)
        now = time.time()
        if self.capture is not None and self._capture_rate and self._rng.random() < self._capture_rate:
            self.capture.put(
                _event(iid, now, self.config.name, variant.name, model, False, recs, rows, preds)
            )
        for shadow in shadows:
            self._shadow(shadow, recs, fetched, iid, now, csv)
        headers = {
            "X-Tide-Model-Version": model.ref,
            "X-Tide-Variant": variant.name,
            "X-Tide-Inference-Id": iid,
            "Server-Timing": (
                f"lookup;dur={(t3 - t2) * 1e3:.3f}, transform;dur={(t2 - t1) * 1e3:.3f}, "
                f"model;dur={(t4 - t3) * 1e3:.3f}, explain;dur={(t5 - t4) * 1e3:.3f}, "
                f"total;dur={(time.perf_counter() - t0) * 1e3:.3f}"
            ),
        }
        if csv and not explain and not (accept and "json" in accept):
            text = "\n".join(repr(p["probability"]) for p in preds) + "\n"
            return Invocation(text.encode(), "text/csv", headers, variant.name)
        if many:
            doc: dict[str, Any] = {"predictions": preds}
        else:
            doc = preds[0]
        doc["model_version"] = model.ref
        doc["variant"] = variant.name
        doc["inference_id"] = iid
        return Invocation(orjson.dumps(doc), "application/json", headers, variant.name)

    def _shadow(
        self,
        shadow: Variant,
        recs: list[_Rec],
        fetched: Mapping[tuple[str, str], Any],
        iid: str,
        now: float,
        csv: bool,
    ) -> None:
        """Score a copy of the request with a shadow variant and capture it; never affects the answer."""
        model, plan = shadow.active
        try:
            if csv and model.features != self.live[0].model.features:
                raise _invalid("body", "CSV rows are in another model's feature order", "n/a")
            rows = self._rows(recs, model, plan, fetched)
            probs = model.predict_rows(rows)
        except TideError:
            self.metrics.inc("tide_shadow_failures_total", (("variant", shadow.name),))
            return
        preds = [
            {
                "probability": p,
                "decision": int(p >= model.threshold_for(r)),
                "threshold": model.threshold_for(r),
            }
            for r, p in zip(rows, probs, strict=True)
        ]
        self.metrics.inc("tide_records_total", (("variant", shadow.name),), len(rows))
        if self.capture is not None:
            self.capture.put(_event(iid, now, self.config.name, shadow.name, model, True, recs, rows, preds))


_FORMS = "send {'policy_id': …}, {'policy_id': …, 'claim': {…}} or {'features': {…}}, or a list of them"


def _event(
    iid: str,
    now: float,
    endpoint: str,
    variant: str,
    model: ServingModel,
    shadow: bool,
    recs: list[_Rec],
    rows: list[Row],
    preds: list[dict[str, Any]],
) -> dict[str, Any]:
    """A capture event; built from references only (serialised later, in the writer thread)."""
    inputs: list[Any] = []
    for r in recs:
        if r.features is not None:
            inputs.append({"features": r.features})
        elif r.row is not None:
            inputs.append({"csv": r.row})
        else:
            item: dict[str, Any] = {model.entity or "id": r.entity_id}
            if r.claim is not None:
                item["claim"] = r.claim
            inputs.append(item)
    return {
        "inference_id": iid,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z",
        "endpoint": endpoint,
        "variant": variant,
        "model_version": model.ref,
        "shadow": shadow,
        "input": inputs,
        "features": {"names": list(model.features), "rows": rows},
        "output": preds,
    }
