"""`edgelens run --config FILE`: the headless service the glasses run.

SIGTERM/SIGINT stop cleanly; SIGHUP reloads the config (a config or model that fails to
load is reported and the running pipeline keeps serving)."""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading

from device import config as config_module
from device.config import Config
from device import logs
from device.assembly import build_pipeline, load_stages, start_model_watch
from device.errors import EdgelensError
from device.live.display import Display
from device.metrics import Metrics
from device.operating_point import warn_if_calibrated_elsewhere
from device.report import format_summary
from device.telemetry.handler import TelemetryLogHandler
from device.telemetry.recorder import Recorder

log = logging.getLogger("device.service")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="the headless service (systemd runs this on the glasses)",
        description="Run the pipeline headless until SIGTERM. Logs go as JSON lines to "
                    "[logging] file and as text to the console. SIGHUP reloads the config; "
                    "SIGUSR1 says the newest translation in view ([audio] speak).")
    parser.set_defaults(func=run)


class Service:
    def __init__(self, cfg: Config, config_path: str | None):
        self.cfg, self.config_path = cfg, config_path
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.pipeline = None

    def _on_stop(self, signum, _frame) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        self.stopping.set()
        if self.pipeline is not None:
            self.pipeline.stop_event.set()

    def _on_hup(self, signum, _frame) -> None:
        self.reload_requested.set()
        if self.pipeline is not None:
            self.pipeline.stop_event.set()

    def _on_usr1(self, signum, _frame) -> None:
        """Say the newest translation in view (the on-request button). In a thread: the
        frame path this handler interrupts may hold the speaker's lock."""
        speech = self.pipeline.speech if self.pipeline is not None else None
        if speech is not None:
            threading.Thread(target=speech.request, name="speak-request", daemon=True).start()

    def _reload(self):
        """New config and stages, or None (keep the running ones) when they fail to load."""
        try:
            cfg = config_module.load(self.config_path)
            stages = load_stages(cfg)
        except EdgelensError as exc:
            log.error("reload failed; keeping the running config and models",
                      extra={"error": str(exc)})
            return None
        except Exception as exc:  # noqa: BLE001 - a reload never takes the running pipeline down
            log.exception("reload failed; keeping the running config and models",
                          extra={"error": f"{type(exc).__name__}: {exc}"})
            return None
        logs.setup(cfg.logging.level, cfg.logging.file, cfg.logging.max_bytes,
                   cfg.logging.backups)
        log.info("config reloaded", extra={"config": self.config_path})
        return cfg, stages

    def serve(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        stages = load_stages(self.cfg)
        recorder = self._open_telemetry()
        log.info("service started", extra={"models": stages.versions,
                                           "source": self.cfg.source.uri,
                                           "backend": stages.recognizer.backend})
        warn_if_calibrated_elsewhere(self.cfg, stages.versions)         # issue 15
        while not self.stopping.is_set():
            # one Metrics for the pipeline and the display: recorded and dropped video frames
            # reach the summary and telemetry too
            metrics = Metrics(forward=recorder)
            display = Display(metrics, record=self.cfg.display.record, fps=self.cfg.source.fps)
            self.pipeline = build_pipeline(self.cfg, stages, show=display, recorder=recorder,
                                           metrics=metrics)
            if self.stopping.is_set() or self.reload_requested.is_set():
                # a signal that came while the pipeline was being built found no pipeline
                # to stop: pass it on now, or the service would run on
                self.pipeline.stop_event.set()
            watch = start_model_watch(self.cfg, self.pipeline, stages, recorder)  # issue 6
            summary = self.pipeline.run()
            if watch is not None:
                watch.stop()
            display.close()
            log.info("pipeline stopped", extra={"summary": summary})
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                loaded = self._reload()
                if loaded is not None:
                    self.cfg, stages = loaded
                continue
            if not self.stopping.is_set():  # the source ended: a finite file or folder
                print(format_summary(summary))
                break
        log.info("service stopped")
        if recorder is not None:
            recorder.close()
        return 0

    def _open_telemetry(self):
        """The telemetry recorder, or None: the pipeline never depends on telemetry working."""
        if not self.cfg.telemetry.enabled:
            return None
        try:
            recorder = Recorder.open(self.cfg.telemetry)
        except (EdgelensError, OSError, sqlite3.Error) as exc:
            log.error("telemetry store unavailable; running without it",
                      extra={"error": str(exc)})
            return None
        logging.getLogger().addHandler(TelemetryLogHandler(recorder,
                                                           self.cfg.telemetry.log_level))
        return recorder


def run(args, cfg: Config) -> int:
    return Service(cfg, getattr(args, "config", None)).serve()
