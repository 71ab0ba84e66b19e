"""The study's storage: optuna's RDB storage (SQLite or PostgreSQL) with heartbeats, or in memory.

Workers share one study through an optuna RDB storage (https://optuna.readthedocs.io/en/stable/reference/
storages.html): an SQLite file in the study directory by default, or any RDB URL (PostgreSQL) to scale out to
many machines. Heartbeats mark a killed worker's trial failed and a retry callback re-queues it, so the study
still finishes its trials.
"""
from __future__ import annotations

import importlib.util
import warnings
from typing import Any

from trainwell.core.errors import UserError


def quiet_optuna():
    """optuna, imported on first use (about a second) with its experimental and future warnings off."""
    import optuna   # lazy: optuna costs about a second to import; trainwell imports it only to search
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def make_storage(url: str, heartbeat: int | None = 10, grace: int | None = None, max_retry: int = 3):
    """An RDBStorage with heartbeats and a retry-on-stale-trial callback (``memory``: optuna's
    in-memory storage, one per process: no study file, nothing to resume, one worker)."""
    if url == "memory":
        optuna = quiet_optuna()
        return _MEMORY.setdefault(url, optuna.storages.InMemoryStorage())
    optuna = quiet_optuna()
    storages = optuna.storages
    url = _driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    retry_cls = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {"heartbeat_interval": int(heartbeat), "grace_period": int(grace) if grace else None}
    try:
        try:
            return storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs,
                                       **({"heartbeat_stale_trial_callback": retry_cls(max_retry=max_retry)}
                                          if heartbeat else {}))
        except TypeError:   # optuna < 4.9 names it failed_trial_callback
            return storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs,
                                       **({"failed_trial_callback": retry_cls(max_retry=max_retry)}
                                          if heartbeat else {}))
    except ImportError as exc:
        raise UserError(f"Cannot open the study storage {redact(url)}: {exc}. For PostgreSQL install "
                        f"psycopg2-binary (pip install psycopg2-binary).") from None
    except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError ...
        if isinstance(exc, optuna.exceptions.OptunaError) or type(exc).__module__.startswith("sqlalchemy"):
            raise UserError(f"Cannot open the study storage {redact(url)}: {str(exc).splitlines()[0]}. "
                            f"Check the --storage URL (e.g. postgresql://user:password@host:5432/db or "
                            f"sqlite:///path/study.db) and that the server is running.") from None
        raise


_MEMORY: dict = {}


def _driver(url: str) -> str:
    """``postgresql://`` with whichever driver is installed (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if url.startswith(("postgresql://", "postgres://")):
        rest = url.split("://", 1)[1]
        for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return f"postgresql+{dialect}://{rest}"
    return url


def redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}:***@{host}" if ":" in cred else url
    return url
