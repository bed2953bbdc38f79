"""Intel GPU energy through Level Zero Sysman (the ``pyzes`` bindings; extra ``intel``).

Per visible GPU, device ``gpu:N`` with N its Sysman index (``zesDriverGet`` then
``zesDeviceGet`` order). Energy is the power domain's ``zesPowerGetEnergyCounter``
(``zes_power_energy_counter_t``: ``energy`` in µJ, ``timestamp`` in µs): the card domain
(``ZES_POWER_DOMAIN_CARD``, the whole board, like NVML's figure) where there is one, else
the package. The other domains — package, memory, and each tile's (``onSubdevice``) — are
per-device detail only (``gpu:N:package``, ``gpu:N.M`` for tile M), never added, since the
card contains them. The counter is 64 bits of µJ: unwrapped with
:class:`~energykernel.counters._unwrap.WrapCounter`, and a backwards step from below half
its range (a driver reload or GPU reset restarts it) counts from 0.

``ZE_AFFINITY_MASK`` is applied to Sysman's device list by this backend: with
``ZE_FLAT_DEVICE_HIERARCHY=FLAT`` (Level Zero's default) its indices number tiles across
cards, otherwise ``N`` names card N and ``N.M`` its tile M. A mask that selects some
tiles of a card counts those tiles' domains (``gpu:N.M``) where the card has per-tile
domains; otherwise the whole card is counted and the status says so.

``pyzes`` loads the Level Zero loader (``libze_loader.so.1``) when imported, and its
functions return ``ze_result_t`` codes (filled ctypes structures, no exceptions): every
failure becomes a status reason, never a crash.
"""

from __future__ import annotations

import ctypes
import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ._gpulib import GpuLibraryBackend, LibGpu
from ._unwrap import WrapCounter
from .base import BackendUnavailable, Device

NOT_INSTALLED = ("pyzes is not installed: pip install 'energykernel[intel]' (the Python "
                 "bindings; they need the Level Zero loader libze_loader.so.1 and Intel's "
                 "GPU driver with Sysman)")
#: ``zes_power_energy_counter_t.energy``: 64 bits of µJ.
COUNTER_RANGE_UJ = 2**64 - 1
_RESET_BELOW = 2**63
#: Intel documents no refresh period for the counter; bounds assume NVML's ~100 ms.
ENERGY_UPDATE_S = 0.1
#: Power assumed where the domain gives no limit (W): above any Intel GPU's (Max 1550: 600 W).
UNKNOWN_GPU_POWER_W = 1500.0
# zes_power_domain_t (zes_api.h) → detail name; CARD is preferred over PACKAGE as the count.
_DOMAINS = {0: "unknown", 1: "card", 2: "package", 3: "stack", 4: "memory", 5: "gpu"}
_PREFERRED = (1, 2, 0)
_ZE_SUCCESS = 0
_UNSUPPORTED = (0x78000003, 0x78000002)  # ZE_RESULT_ERROR_UNSUPPORTED_FEATURE / _VERSION
# ze_result_t codes (values fixed by ze_api.h) that get a specific explanation.
_REASONS = {
    0x78000001: "Level Zero found no driver to initialise (no Intel GPU, or the compute "
                "runtime intel-level-zero-gpu / libze-intel-gpu1 is not installed)",
    0x70010000: "no permission to read the GPU's telemetry (add the user to the 'render' "
                "group: `sudo usermod -aG render $USER`; some telemetry is root-only)",
    0x70000001: "the GPU is lost (device removed or hung); check `dmesg`",
    0x70010001: "the GPU is busy with another operation (ZE_RESULT_ERROR_NOT_AVAILABLE)",
    0x70020000: "a library Level Zero depends on is missing (check the compute runtime)",
    0x78000003: "the driver does not support this Sysman feature",
}


class ZeError(RuntimeError):
    """A ``ze_result_t`` other than success, with ``code``."""

    def __init__(self, call: str, code: int) -> None:
        super().__init__(f"{call} returned 0x{code & 0xFFFFFFFF:08X}")
        self.code = code & 0xFFFFFFFF


def levelzero_reason(exc: BaseException) -> str:
    """A readable reason for a Level Zero failure."""
    code = getattr(exc, "code", None)
    if code in _REASONS:
        return f"Level Zero: {_REASONS[code]}"
    return f"Level Zero error: {exc}" if code is not None else f"Level Zero failed: {exc!r}"


def _check(call: str, rc: int) -> None:
    if rc != _ZE_SUCCESS:
        raise ZeError(call, int(rc))


def _text(raw: bytes | str) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _handles(zes: ModuleType, call: str, kind: Any, *first: Any) -> list[Any]:
    """The two-call enumeration of Level Zero: count, then an array of handles."""
    count = ctypes.c_uint32(0)
    _check(call, getattr(zes, call)(*first, ctypes.byref(count), None))
    if count.value == 0:
        return []
    array = (kind * count.value)()
    _check(call, getattr(zes, call)(*first, ctypes.byref(count), array))
    return list(array[: count.value])


def parse_mask(spec: str, flat: bool, tiles: list[int],
               notes: list[str]) -> dict[int, set[int] | None]:
    """Card → the tiles ``ZE_AFFINITY_MASK`` selects (``None``: the whole card).

    ``tiles`` is each card's tile count (1 for a card without sub-devices). FLAT numbers
    tiles across cards; COMBINED / COMPOSITE use ``card`` or ``card.tile``."""
    flat_index = [(card, tile) for card, n in enumerate(tiles) for tile in range(n)]
    out: dict[int, set[int] | None] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        parts = entry.split(".")
        if not entry or not all(p.isdigit() for p in parts) or len(parts) > (1 if flat else 2):
            notes.append(f"ZE_AFFINITY_MASK entry {entry!r} is not "
                         f"{'<device>' if flat else '<device>[.<sub-device>]'}: skipped")
            continue
        if flat:
            if int(entry) >= len(flat_index):
                notes.append(f"ZE_AFFINITY_MASK entry {entry!r} names no device here: skipped")
                continue
            card, tile = flat_index[int(entry)]
            whole = tiles[card] == 1
        else:
            card, tile = int(parts[0]), int(parts[1]) if len(parts) == 2 else -1
            if card >= len(tiles) or tile >= tiles[card]:
                notes.append(f"ZE_AFFINITY_MASK entry {entry!r} names no device here: skipped")
                continue
            whole = tile < 0 or tiles[card] == 1
        if whole or out.get(card, set()) is None:
            out[card] = None
        else:
            chosen = out.setdefault(card, set())
            assert chosen is not None
            chosen.add(tile)
    return out


@dataclass
class _Domain(LibGpu):
    counter: WrapCounter = field(default_factory=lambda: WrapCounter(0, COUNTER_RANGE_UJ, 0.0))
    resets: int = 0


@dataclass
class _Found:
    """One power domain as discovered: handle, properties, first reading."""

    handle: Any
    domain: int
    sub: int | None  # tile index, None for a whole-card domain
    limit_w: float | None
    first_uj: int
    first_s: float


def _best(domains: Iterable[_Found]) -> _Found:
    """The domain to count among ``domains``: card, else package, else the first."""
    return min(domains, key=lambda d: _PREFERRED.index(d.domain) if d.domain in _PREFERRED
               else len(_PREFERRED))


class LevelZeroBackend(GpuLibraryBackend):
    """Cumulative energy of each visible Intel GPU (its card, or the selected tiles)."""

    name = "levelzero"
    method = "levelzero"
    library = "Level Zero"
    visibility_vars = ("ZE_AFFINITY_MASK",)
    energy_update_s = ENERGY_UPDATE_S
    unknown_power_w = UNKNOWN_GPU_POWER_W

    # -- the library -----------------------------------------------------------------
    def _import(self) -> ModuleType:
        try:
            return importlib.import_module("pyzes")
        except ImportError:
            raise BackendUnavailable(NOT_INSTALLED) from None
        except Exception as exc:  # pyzes loads libze_loader.so.1 when imported
            raise BackendUnavailable(
                f"pyzes is installed but the Level Zero loader could not be loaded ({exc}): "
                "install level-zero (libze1) and Intel's compute runtime "
                "(intel-level-zero-gpu / libze-intel-gpu1)") from None

    def _start(self, lib: ModuleType) -> None:
        _check("zesInit", lib.zesInit(0))

    def _stop(self, lib: ModuleType) -> None:
        """Sysman has no shutdown call: zesInit is once per process."""

    def _reason(self, lib: ModuleType, exc: BaseException) -> str:
        return levelzero_reason(exc)

    def _energy_unit(self, gpu: Any) -> tuple[float, str]:
        return 1e-6, "1 µJ"

    # -- discovery -----------------------------------------------------------------
    def _domains(self, zes: ModuleType, device: Any) -> list[_Found]:
        """Every power domain of ``device`` whose energy counter reads."""
        out = []
        for handle in _handles(zes, "zesDeviceEnumPowerDomains", zes.zes_pwr_handle_t, device):
            ext = zes.zes_power_ext_properties_t()
            ext.stype = zes.ZES_STRUCTURE_TYPE_POWER_EXT_PROPERTIES
            ext.domain = 0
            props = zes.zes_power_properties_t()
            props.stype = zes.ZES_STRUCTURE_TYPE_POWER_PROPERTIES
            props.pNext = ctypes.cast(ctypes.pointer(ext), ctypes.c_void_p)
            if zes.zesPowerGetProperties(handle, ctypes.byref(props)) != _ZE_SUCCESS:
                continue
            energy = zes.zes_power_energy_counter_t()
            rc = zes.zesPowerGetEnergyCounter(handle, ctypes.byref(energy))
            if rc != _ZE_SUCCESS:
                if rc & 0xFFFFFFFF not in _UNSUPPORTED:
                    self.notes.append(levelzero_reason(ZeError("zesPowerGetEnergyCounter", rc)))
                continue
            limit_mw = next((v for v in (props.maxLimit, props.defaultLimit) if v > 0), None)
            out.append(_Found(handle, int(ext.domain), int(props.subdeviceId)
                              if props.onSubdevice else None,
                              limit_mw / 1000 if limit_mw else None,
                              int(energy.energy), energy.timestamp / 1e6))
        return out

    def _discover(self, zes: ModuleType) -> list[tuple[Device, _Domain]]:
        """Devices and their first readings; zesInit must have been called."""
        self.notes = []
        cards = []
        for driver in _handles(zes, "zesDriverGet", zes.zes_driver_handle_t):
            for device in _handles(zes, "zesDeviceGet", zes.zes_device_handle_t, driver):
                props = zes.zes_device_properties_t()
                props.stype = zes.ZES_STRUCTURE_TYPE_DEVICE_PROPERTIES
                rc = zes.zesDeviceGetProperties(device, ctypes.byref(props))
                if rc != _ZE_SUCCESS:
                    self.notes.append("a device's properties could not be read: " +
                                      levelzero_reason(ZeError("zesDeviceGetProperties", rc)))
                elif props.core.type == zes.ZE_DEVICE_TYPE_GPU:
                    cards.append((device, props))
        spec = os.environ.get("ZE_AFFINITY_MASK", "").strip()
        flat = os.environ.get("ZE_FLAT_DEVICE_HIERARCHY", "FLAT").strip().upper() == "FLAT"
        tiles = [max(1, int(p.numSubdevices)) for _, p in cards]
        mask = parse_mask(spec, flat, tiles, self.notes) if spec else dict.fromkeys(
            range(len(cards)))
        found: list[tuple[Device, _Domain]] = []
        for index, (device, props) in enumerate(cards):
            if index not in mask:
                continue
            model = _text(props.modelName) or _text(props.core.name) or "Intel GPU"
            domains = self._domains(zes, device)
            if not domains:
                self.notes.append(f"gpu:{index} ({model}): no power domain with an energy counter")
                continue
            meta = {"index": index, "model": model, "serial": _text(props.serialNumber),
                    "uuid": bytes(props.core.uuid.id).hex(), "source": "energy_counter"}
            found += self._plan(index, meta, domains, mask[index])
        return found

    def _plan(self, index: int, meta: dict[str, Any], domains: list[_Found],
              chosen_tiles: set[int] | None) -> list[tuple[Device, _Domain]]:
        """Name each domain of card ``index``. The card counts its card domain (else its
        package; else one domain per tile), or the chosen tiles' domains where the mask
        chose tiles and the card has them; every other domain is detail."""
        whole = [d for d in domains if d.sub is None]
        tiles = sorted({d.sub for d in domains if d.sub is not None})
        if chosen_tiles is not None and chosen_tiles <= set(tiles):
            counted = [_best(d for d in domains if d.sub == t) for t in sorted(chosen_tiles)]
            meta["tiles"] = sorted(chosen_tiles)
        else:
            if chosen_tiles is not None:
                self.notes.append(f"gpu:{index}: ZE_AFFINITY_MASK chose tile(s) "
                                  f"{', '.join(map(str, sorted(chosen_tiles)))}, but energy is "
                                  "per card here: the whole card is counted")
                chosen_tiles = None
            counted = [_best(whole)] if whole else [
                _best(d for d in domains if d.sub == t) for t in tiles]
        out = []
        used: set[str] = set()
        for d in domains:
            if d.sub is not None and chosen_tiles is not None and d.sub not in chosen_tiles:
                continue
            kind = _DOMAINS.get(d.domain, f"domain-{d.domain}")
            where = f"gpu:{index}" if d.sub is None else f"gpu:{index}.{d.sub}"
            component = "gpu" if any(d is c for c in counted) else None
            name = where if component else f"{where}:{kind}"
            while name in used:  # two domains of one kind (no extended properties)
                name += "'"
            used.add(name)
            dmeta = {**meta, "domain": kind}
            if d.sub is not None:
                dmeta["tile"] = d.sub
            if d.limit_w:
                dmeta["power_limit_w"] = d.limit_w
            counter = WrapCounter(d.first_uj, COUNTER_RANGE_UJ, d.first_s)
            out.append((Device(name, component, dmeta), _Domain(name, d.handle, counter=counter)))
        return out

    def _describe(self, device: Device) -> str:
        if device.component is None:
            return f"{device.name} detail"
        return f"{device.name} {device.meta['model']} ({device.meta['domain']} energy counter)"

    # -- Backend -------------------------------------------------------------------
    def _read_some(self, counted_only: bool) -> dict[str, float]:
        zes = self._lib
        if zes is None:  # closed (or never opened)
            return {}
        out: dict[str, float] = {}
        energy = zes.zes_power_energy_counter_t()
        for gpu in self._gpus:
            device = self.devices[gpu.name]
            if counted_only and device.component is None:
                continue
            rc = zes.zesPowerGetEnergyCounter(gpu.handle, ctypes.byref(energy))
            if rc == _ZE_SUCCESS:
                raw = int(energy.energy)
                if raw < gpu.counter.last_uj < _RESET_BELOW:  # a restart, not a wrap
                    gpu.resets += 1
                    device.meta["counter_resets"] = gpu.resets
                    gpu.counter.last_uj = 0
                gpu.counter.update(raw, energy.timestamp / 1e6)
            else:
                device.meta["last_error"] = levelzero_reason(
                    ZeError("zesPowerGetEnergyCounter", rc))
            out[gpu.name] = gpu.counter.total_uj * 1e-6
        return out

    def _read(self) -> dict[str, float]:
        return self._read_some(False)

    def _read_counted(self) -> dict[str, float]:
        return self._read_some(True)
