"""Mount an ISO URL on a server's BMC through Redfish (``sushy``), and boot from it once.

No Django here: an image URL, a BMC address and credentials in, each step's outcome out
(:func:`mount`). The password is used for this call only: never stored, and never in a
log line or a message (nor is the image URL, whose path holds a secret token). Why each
step is done as it is: docs/design.md, "Redfish: mounting a URL on a BMC".
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    from sushy import exceptions as sushy_errors

# sushy is imported by the functions that use it, not here: it weighs about 18 MB, which
# every app server's worker would carry whether or not anyone mounts an ISO on a BMC.

Power = Literal["none", "on", "reset"]
POWER_CHOICES: tuple[Power, ...] = ("none", "on", "reset")
STEPS = ("connect", "system", "virtual media", "eject", "insert", "boot override", "power")
HIDDEN = "***"
T = TypeVar("T")


class Failure(StrEnum):
    """Why a BMC could not mount the URL: one kind per cause an operator acts on."""

    UNREACHABLE = "unreachable"
    TLS = "tls"
    CREDENTIALS = "bad credentials"
    NO_VIRTUAL_MEDIA = "no virtual media"
    MEDIA_REFUSED = "media type refused"
    NOT_ALLOWED = "action not allowed"
    BMC_ERROR = "bmc error"


class BadAddress(ValueError):
    """The BMC address given cannot be used (said before anything is sent)."""


@dataclass(frozen=True)
class Step:
    name: str
    status: Literal["done", "skipped", "failed"]
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"step": self.name, "status": self.status, "detail": self.detail}


@dataclass
class MountResult:
    """Every step tried, in order; ``failure`` and ``message`` when one failed."""

    bmc: str
    steps: list[Step] = field(default_factory=list)
    failure: Failure | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None

    def steps_as_dicts(self) -> list[dict[str, str]]:
        return [step.as_dict() for step in self.steps]


class _StepFailed(Exception):
    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


def bmc_base_url(address: str, insecure: bool) -> str:
    """``https://host[:port]`` from ``host``, ``host:port`` or a URL; BadAddress if unusable.

    ``http://`` would send the password in clear: only with the insecure switch.
    """
    text = address.strip()
    if not text or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise BadAddress("bmc must be a host name or address, with an optional port, and no spaces")
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise BadAddress(f"bmc is not a valid address: {error}") from None
    if parts.scheme not in ("https", "http"):
        raise BadAddress("bmc must use https:// (or http:// with insecure)")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise BadAddress("bmc must be a host name or address, without user or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadAddress("bmc must be a host name or address with an optional port, no path")
    if parts.scheme == "http" and not insecure:
        raise BadAddress("bmc over http:// sends the password in clear: use https://, or set insecure")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


class _Redactor(logging.Filter):
    """Hides the secrets of every call under way in sushy's (and urllib3's) log records."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[int, tuple[str, ...]] = {}

    @contextmanager
    def hiding(self, *secrets: str) -> Iterator[None]:
        key = id(secrets)
        with self._lock:
            self._secrets[key] = tuple(s for s in secrets if s)
        try:
            yield
        finally:
            with self._lock:
                del self._secrets[key]

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = [s for group in self._secrets.values() for s in group]
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, HIDDEN)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = self.redact(message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


_REDACTOR = _Redactor()


def _hide_in_logs() -> None:
    """Put the redactor on every sushy logger (a logger's filters do not reach its children)."""
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if name == "sushy" or name.startswith(("sushy.", "urllib3"))
    ]
    for name in names:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _classify(error: Exception, step: str, bmc: str) -> _StepFailed:
    """A sushy (or requests) error as the kind an operator acts on, with a plain message."""
    from sushy import exceptions as sushy_errors

    if isinstance(error, _StepFailed):
        return error
    if isinstance(error, sushy_errors.ConnectionError | requests.RequestException):
        if any(isinstance(e, requests.exceptions.SSLError) for e in _chain(error)):
            return _StepFailed(
                Failure.TLS,
                f"TLS: the certificate of {bmc} could not be verified (set REDFISH_CA_BUNDLE to its "
                "CA, or use insecure in a lab)",
            )
        timeout = any(isinstance(e, requests.exceptions.Timeout) for e in _chain(error))
        why = "no answer in time" if timeout else "connection failed"
        return _StepFailed(Failure.UNREACHABLE, f"cannot reach the BMC at {bmc} ({why})")
    if isinstance(error, sushy_errors.AccessError):
        if error.status_code == 401 or step == "connect":
            return _StepFailed(Failure.CREDENTIALS, f"{bmc} refused the username or password")
        return _StepFailed(Failure.NOT_ALLOWED, f"{step}: this BMC account may not do that ({_said(error)})")
    if isinstance(error, sushy_errors.MissingActionError | sushy_errors.InvalidParameterValueError):
        return _StepFailed(Failure.NOT_ALLOWED, f"{step}: the BMC does not offer it ({error})")
    if isinstance(error, sushy_errors.HTTPError):
        if error.status_code in (405, 501):
            return _StepFailed(Failure.NOT_ALLOWED, f"{step}: the BMC does not allow it ({_said(error)})")
        if step == "insert":  # the BMC could not take (or fetch) the image: its own words say why
            return _StepFailed(Failure.MEDIA_REFUSED, f"insert: the BMC refused the ISO URL ({_said(error)})")
        if error.status_code in (400, 409):
            return _StepFailed(Failure.NOT_ALLOWED, f"{step}: the BMC refused ({_said(error)})")
        return _StepFailed(Failure.BMC_ERROR, f"{step}: the BMC failed ({_said(error)})")
    return _StepFailed(
        Failure.BMC_ERROR, f"{step}: unexpected answer from the BMC ({type(error).__name__}: {error})"
    )


def _said(error: sushy_errors.HTTPError) -> str:
    detail = (error.detail or "").strip().replace("\n", " ")
    return f"HTTP {error.status_code}" + (f": {detail[:300]}" if detail else "")


def _is_cd(media: Any) -> bool:
    kinds = {getattr(kind, "value", kind) for kind in (media.media_types or [])}
    return bool(kinds & {"CD", "DVD"})


def _pick_system(systems: Any, system_id: str | None) -> Any:
    paths = list(systems.members_identities)
    if not paths:
        raise _StepFailed(Failure.BMC_ERROR, "system: the BMC lists no computer system")
    ids = [path.rstrip("/").rsplit("/", 1)[-1] for path in paths]
    if system_id:
        if system_id not in ids:
            raise _StepFailed(Failure.BMC_ERROR, f"system: no system {system_id!r} (it has {', '.join(ids)})")
        return systems.get_member(paths[ids.index(system_id)])
    if len(paths) > 1:
        raise _StepFailed(
            Failure.BMC_ERROR, f"system: the BMC has {len(paths)} systems: name one ({', '.join(ids)})"
        )
    return systems.get_member(paths[0])


def _find_cd(root: Any, system: Any) -> tuple[Any, str]:
    """The first CD/DVD virtual media of the system's managers (or of the system itself)."""
    from sushy import exceptions as sushy_errors

    places: list[tuple[str, Callable[[], Any]]] = []
    try:
        managers = list(system.managers)
    except (sushy_errors.MissingAttributeError, AttributeError):
        managers = []
    if not managers:
        try:
            managers = list(root.get_manager_collection().get_members())
        except (sushy_errors.MissingAttributeError, sushy_errors.ResourceNotFoundError):
            managers = []
    for manager in managers:
        places.append((f"manager {manager.identity}", functools.partial(getattr, manager, "virtual_media")))
    places.append((f"system {system.identity}", lambda: system.virtual_media))
    for where, collection in places:
        try:
            members = collection().get_members()
        except (sushy_errors.MissingAttributeError, sushy_errors.ResourceNotFoundError, AttributeError):
            continue
        for media in members:
            if _is_cd(media):
                return media, f"{media.identity} of {where}"
    raise _StepFailed(Failure.NO_VIRTUAL_MEDIA, "virtual media: the BMC offers no CD/DVD virtual media")


def mount(
    image_url: str,
    address: str,
    username: str,
    password: str,
    *,
    insecure: bool = False,
    ca_bundle: str | None = None,
    power: Power = "none",
    system_id: str | None = None,
    timeout: float = 60.0,
) -> MountResult:
    """Insert ``image_url`` as the BMC's virtual CD and set a one-time boot from it.

    Ejects what is inserted, inserts the URL (inserted, write-protected), sets the next
    boot to CD once (in the boot mode the system reports), then ``power``: ``none``,
    ``on`` (if off) or ``reset`` (restart if on, else on). Stops at the first failing step.
    BadAddress (before anything is sent) if ``address`` cannot be used.
    """
    import sushy

    if power not in POWER_CHOICES:
        raise ValueError(f"power must be one of {', '.join(POWER_CHOICES)}")
    base = bmc_base_url(address, insecure)
    verify: bool | str = False if insecure else (ca_bundle or True)
    result = MountResult(bmc=base)
    if isinstance(verify, str) and not os.path.isfile(verify):
        result.failure, result.message = Failure.TLS, f"TLS: the CA bundle {verify} is not a readable file"
        result.steps.append(Step("connect", "failed", result.message))
        return result
    _hide_in_logs()
    with _REDACTOR.hiding(password, image_url, urlsplit(image_url).path.rsplit("/", 1)[0]):
        root: Any = None
        step = "connect"

        def done(status: Literal["done", "skipped"], detail: str) -> None:
            result.steps.append(Step(step, status, _REDACTOR.redact(detail)))

        try:
            root = sushy.Sushy(
                base,
                username=username,
                password=password,
                verify=verify,
                server_side_retries=1,
                server_side_retries_delay=1,
                read_timeout=timeout,
                connect_timeout=min(timeout, 10.0),
            )
            systems = root.get_system_collection()  # the first read that needs the credentials
            done("done", f"Redfish {root.redfish_version or '?'} at {base}, logged in")
            step = "system"
            system = _pick_system(systems, system_id)
            done(
                "done", f"{system.identity} ({system.name or 'no name'}), power {_value(system.power_state)}"
            )
            step = "virtual media"
            media, where = _find_cd(root, system)
            done("done", where)
            step = "eject"
            if media.inserted or media.image:
                media.eject_media()
                done("done", "ejected what was inserted")
            else:
                done("skipped", "nothing was inserted")
            step = "insert"
            media.insert_media(image_url, inserted=True, write_protected=True)
            media.refresh(force=True)
            if media.image and media.image != image_url:
                raise _StepFailed(
                    Failure.MEDIA_REFUSED, "insert: the BMC holds another image after inserting"
                )
            done("done", "inserted, write-protected")
            step = "boot override"
            mode = system.boot.mode
            system.set_system_boot_options(
                target=sushy.BootSource.CD, enabled=sushy.BootSourceOverrideEnabled.ONCE, mode=mode
            )
            done("done", f"next boot from CD, once ({_value(mode) if mode else 'boot mode as set'})")
            step = "power"
            _power(system, power, done)
        except Exception as error:
            failed = _classify(error, step, base)
            result.failure = failed.failure
            result.message = _REDACTOR.redact(failed.message)
            result.steps.append(Step(step, "failed", result.message))
        finally:
            if root is not None:
                _close(root)
    return result


def _value(member: Any) -> str:
    return str(getattr(member, "value", member))


def _power(system: Any, power: Power, done: Callable[[Literal["done", "skipped"], str], None]) -> None:
    import sushy

    state = system.power_state
    if power == "none":
        done("skipped", f"power left {_value(state)}: the override applies at the next boot")
        return
    allowed = set(system.get_allowed_reset_system_values())
    if state == sushy.PowerState.ON and power == "on":
        done("skipped", "already on: the override applies at the next boot")
        return
    if state == sushy.PowerState.ON:
        for reset in (
            sushy.ResetType.FORCE_RESTART,
            sushy.ResetType.GRACEFUL_RESTART,
            sushy.ResetType.POWER_CYCLE,
        ):
            if reset in allowed:
                system.reset_system(reset)
                done("done", f"reset ({_value(reset)})")
                return
        raise _StepFailed(Failure.NOT_ALLOWED, "power: the BMC offers no restart")
    system.reset_system(sushy.ResetType.ON)
    done("done", "powered on")


def _close(root: Any) -> None:
    """End the Redfish session (sushy deletes it) and the HTTP connections; never raises."""
    with contextlib.suppress(Exception):  # best effort: the steps already said it all
        root.__del__()
