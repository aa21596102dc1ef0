"""A running endpoint bound to a workspace: engine, feature store, capture, keys, and the alias poller.

`EndpointRuntime(ws, name)` loads every variant's model (refusing a corrupt one with `IntegrityError`,
which stops the server at start), opens the online store and the claims flow, and starts two background
threads: the capture writer and a poller that re-reads the registry and the API keys every
`poll_seconds`. When an alias a variant follows (`group@production`) moves to a new Approved version, the
poller loads and checks the new model off the request path and swaps it in with one assignment: no
request is refused or answered by a half-loaded model (zero-downtime switch).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tideml.errors import PolicyViolation, StoreUnavailable, TideError
from tideml.serving.auth import KeyGate
from tideml.serving.capture import CaptureWriter
from tideml.serving.engine import InferenceEngine, Variant
from tideml.serving.metrics import Metrics, MetricsExporter
from tideml.serving.service import EndpointInfo, Endpoints, load_group_infos, resolve_variant
from tideml.serving.sources import FeatureLookup, FlowTransformer, OnlineStoreLookup, RecordTransformer

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["EndpointRuntime"]

log = logging.getLogger("tideml.serving")


class EndpointRuntime:
    """Everything one server process needs to answer for one endpoint."""

    def __init__(
        self,
        ws: Workspace,
        name: str,
        *,
        online_url: str | None = None,
        workers: int = 1,
        metrics_folder: str | Path | None = None,
        lookup: FeatureLookup | None = None,
        transformer: RecordTransformer | None = None,
        seed: int | None = None,
        warm_explainer_after: float | None = 2.0,
    ) -> None:
        self.ws = ws
        self.name = name
        self.endpoints = Endpoints(ws)
        info = self.endpoints.get(name)
        self.info: EndpointInfo = info
        self.config = self.endpoints.config(name)
        self.metrics = Metrics()
        self._deployed = {v["name"]: v for v in info.variants}
        self._groups = load_group_infos(ws, self.config.feature_groups)
        variants = []
        for v in self.config.variants:
            version, model, plan = resolve_variant(ws, v.model, self._groups)
            self._check_approved(v.name, version.version, version.status, version.ref)
            variants.append(Variant(v, (model, plan)))
        self._store: Any = None
        if lookup is None and any(v.active[1].sources for v in variants):
            from tideml.features.online import open_online_store

            self._store = open_online_store(online_url or ws.settings.online_store.url)
            lookup = OnlineStoreLookup(self._store)
        if transformer is None and self.config.claim_flow is not None:
            from tideml.wrangle import FittedFlow

            flow = FittedFlow.from_json(ws.artifacts.get(self.config.claim_flow).decode("utf-8"))
            transformer = FlowTransformer(flow)
        self.capture: CaptureWriter | None = None
        cap = self.config.capture
        if cap.enabled:
            self.capture = CaptureWriter(
                self.endpoints.capture_folder(self.config),
                fmt=cap.format,
                rotate_bytes=int(cap.rotate_mb * (1 << 20)),
                rotate_seconds=cap.rotate_seconds,
                flush_seconds=cap.flush_seconds,
                queue_size=cap.queue_size,
                on_count=lambda outcome, n: self.metrics.inc(
                    "tide_capture_events_total", (("outcome", outcome),), n
                ),
            )
        self.engine = InferenceEngine(
            self.config,
            variants,
            lookup=lookup,
            transformer=transformer,
            capture=self.capture,
            metrics=self.metrics,
            seed=seed,
        )
        self.gate = KeyGate(
            self.endpoints.key_records(),
            endpoint=name,
            required=self.config.require_api_key,
            share=1.0 / max(1, workers),
        )
        self.exporter = MetricsExporter(self.metrics, metrics_folder)
        self._publish_models()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._warm_after = warm_explainer_after
        self.started_at = time.time()

    def _check_approved(self, variant: str, version: int, status: str, ref: str) -> None:
        deployed = self._deployed.get(variant, {})
        allowed = deployed.get("override_approval") and deployed.get("deployed_version") == version
        if status != "Approved" and not allowed:
            raise PolicyViolation(
                f"model {ref} is {status}; only Approved versions are served",
                obj=f"endpoint {self.name}",
                field=f"variants.{variant}.model",
                fix="approve it, or redeploy with override_approval=True (recorded in lineage)",
            )

    def _publish_models(self) -> None:
        self.metrics.clear_gauge("tide_model_info")
        for name, v in self.engine.variants.items():
            labels = (
                ("variant", name),
                ("model_version", v.model.ref),
                ("shadow", str(v.config.shadow).lower()),
            )
            self.metrics.set_gauge("tide_model_info", labels, 1.0)

    # -- background work -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the capture writer, the metrics exporter and the poller."""
        if self.capture is not None:
            self.capture.start()
        self.exporter.start()
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll_loop, name="tide-poller", daemon=True)
            self._poller.start()
        if self._warm_after is not None:
            threading.Thread(target=self._warm, name="tide-warm", daemon=True).start()

    def _warm(self) -> None:
        if self._stop.wait(self._warm_after or 0.0):
            return
        for v in list(self.engine.variants.values()):
            try:
                v.model.warm_explainer()
            except TideError as exc:
                log.warning("explanations unavailable for %s: %s", v.model.ref, exc)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            self.refresh()

    def refresh(self) -> list[str]:
        """Re-read aliases and API keys now; returns the switches made (`variant: old -> new`)."""
        switched: list[str] = []
        try:
            self.gate.replace(self.endpoints.key_records())
        except Exception as exc:
            log.warning("could not re-read API keys: %s", exc)
        for name, v in list(self.engine.variants.items()):
            ref = v.config.model
            if "/" in ref:
                continue  # pinned to a version number
            try:
                version = self.ws.registry.get_version(ref)
                if version.version == v.model.version:
                    continue
                self._check_approved(name, version.version, version.status, version.ref)
                _, model, plan = resolve_variant(self.ws, ref, self._groups)
            except Exception as exc:
                self.metrics.inc("tide_errors_total", (("code", "switch_failed"),))
                log.error("endpoint %s: cannot switch %s to %s: %s", self.name, name, ref, exc)
                continue
            old = v.model.ref
            self.engine.swap(name, model, plan)
            self.metrics.inc("tide_model_switches_total", (("variant", name),))
            switched.append(f"{name}: {old} -> {model.ref}")
            log.info("endpoint %s: variant %s now serves %s (was %s)", self.name, name, model.ref, old)
        if switched:
            self._publish_models()
        return switched

    # -- health ----------------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): models loaded and the online store reachable."""
        details: dict[str, Any] = {"endpoint": self.name, "models": self.engine.models()}
        ok = True
        if self.engine.lookup is not None:
            try:
                self.engine.lookup.ping()
                details["online_store"] = "ok"
            except StoreUnavailable as exc:
                ok = False
                details["online_store"] = str(exc)
        return ok, details

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None
        if self.capture is not None:
            self.capture.close()
        self.exporter.stop()
        if self._store is not None:
            self._store.close()
