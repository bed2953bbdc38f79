"""A fake ``pyzes`` module (Intel's Level Zero Sysman bindings) with the real names and shapes.

``FakePyzes(cards)`` is a module object: install it with
``monkeypatch.setitem(sys.modules, "pyzes", fake)``. As in pyzes 0.1.3: functions are
the C API's (``zesInit``, ``zesDriverGet``, ``zesDeviceGet``, ``zesDeviceGetProperties``,
``zesDeviceEnumPowerDomains``, ``zesPowerGetProperties``, ``zesPowerGetEnergyCounter``),
take ctypes ``byref`` pointers and arrays, fill them, and *return* a ``ze_result_t``
(an int; nothing raises); handles are ``c_void_p`` subclasses; enumerations are the
two-call kind (count with a NULL array, then the array). ``zesPowerGetProperties``
follows ``pNext`` to a ``zes_power_ext_properties_t`` (by its ``stype``) and fills its
``domain``, as the driver does; a card with ``ext_properties=False`` ignores the chain
(an older driver). Energy (µJ, uint64) advances from each domain's power in simulated
time (:meth:`FakePyzes.advance`), wrapping at 2**64; timestamps are µs.
"""

from __future__ import annotations

import ctypes
import types
from ctypes import (
    POINTER,
    Structure,
    c_char,
    c_int32,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from dataclasses import dataclass, field

ZE_RESULT_SUCCESS = 0
ZE_RESULT_ERROR_DEVICE_LOST = 0x70000001
ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS = 0x70010000
ZE_RESULT_ERROR_UNINITIALIZED = 0x78000001
ZE_RESULT_ERROR_UNSUPPORTED_FEATURE = 0x78000003
ZE_RESULT_ERROR_INVALID_ARGUMENT = 0x78000004
ZE_RESULT_ERROR_INVALID_NULL_HANDLE = 0x78000005
ZE_RESULT_ERROR_INVALID_SIZE = 0x78000008
ZE_RESULT_ERROR_UNKNOWN = 0x7FFFFFFE
ZE_DEVICE_TYPE_GPU = 1
ZE_DEVICE_TYPE_CPU = 2
ZES_POWER_DOMAIN_UNKNOWN = 0
ZES_POWER_DOMAIN_CARD = 1
ZES_POWER_DOMAIN_PACKAGE = 2
ZES_POWER_DOMAIN_STACK = 3
ZES_POWER_DOMAIN_MEMORY = 4
ZES_POWER_DOMAIN_GPU = 5
ZES_STRUCTURE_TYPE_DEVICE_PROPERTIES = 0x1
ZES_STRUCTURE_TYPE_POWER_PROPERTIES = 0xD
ZES_STRUCTURE_TYPE_POWER_LIMIT_EXT_DESC = 0x27
ZES_STRUCTURE_TYPE_POWER_EXT_PROPERTIES = 0x28
ZE_MAX_DEVICE_UUID_SIZE = 16
ZES_STRING_PROPERTY_SIZE = 64
ZE_MAX_DEVICE_NAME = 256
COUNTER_MODULUS = 2**64

ze_bool_t = c_uint8
ze_result_t = c_int32
ze_device_type_t = c_int32
zes_power_domain_t = c_int32
zes_power_level_t = c_int32
zes_power_source_t = c_int32
zes_limit_unit_t = c_int32


class zes_driver_handle_t(c_void_p):
    pass


class zes_device_handle_t(c_void_p):
    pass


class zes_pwr_handle_t(c_void_p):
    pass


class ze_device_uuid_t(Structure):
    _fields_ = [("id", ctypes.c_ubyte * ZE_MAX_DEVICE_UUID_SIZE)]


class ze_device_properties_t(Structure):
    _fields_ = [
        ("stype", c_int32), ("pNext", c_void_p), ("type", ze_device_type_t),
        ("vendorId", c_uint32), ("deviceId", c_uint32), ("flags", c_uint32),
        ("subdeviceId", c_uint32), ("coreClockRate", c_uint32), ("maxMemAllocSize", c_uint64),
        ("maxHardwareContexts", c_uint32), ("maxCommandQueuePriority", c_uint32),
        ("numThreadsPerEU", c_uint32), ("physicalEUSimdWidth", c_uint32),
        ("numEUsPerSubslice", c_uint32), ("numSubslicesPerSlice", c_uint32),
        ("numSlices", c_uint32), ("timerResolution", c_uint64),
        ("timestampValidBits", c_uint32), ("kernelTimestampValidBits", c_uint32),
        ("uuid", ze_device_uuid_t), ("name", c_char * ZE_MAX_DEVICE_NAME),
    ]


class zes_device_properties_t(Structure):
    _fields_ = [
        ("stype", c_int32), ("pNext", c_void_p), ("core", ze_device_properties_t),
        ("numSubdevices", c_uint32), ("serialNumber", c_char * ZES_STRING_PROPERTY_SIZE),
        ("boardNumber", c_char * ZES_STRING_PROPERTY_SIZE),
        ("brandName", c_char * ZES_STRING_PROPERTY_SIZE),
        ("modelName", c_char * ZES_STRING_PROPERTY_SIZE),
        ("vendorName", c_char * ZES_STRING_PROPERTY_SIZE),
        ("driverVersion", c_char * ZES_STRING_PROPERTY_SIZE),
    ]


class zes_power_properties_t(Structure):
    _fields_ = [
        ("stype", c_int32), ("pNext", c_void_p), ("onSubdevice", ze_bool_t),
        ("subdeviceId", c_uint32), ("canControl", ze_bool_t),
        ("isEnergyThresholdSupported", ze_bool_t), ("defaultLimit", c_int32),
        ("minLimit", c_int32), ("maxLimit", c_int32),
    ]


class zes_power_limit_ext_desc_t(Structure):
    _fields_ = [
        ("stype", c_int32), ("pNext", c_void_p), ("level", zes_power_level_t),
        ("source", zes_power_source_t), ("limitUnit", zes_limit_unit_t),
        ("enabledStateLocked", ze_bool_t), ("enabled", ze_bool_t),
        ("intervalValueLocked", ze_bool_t), ("interval", c_int32),
        ("limitValueLocked", ze_bool_t), ("limit", c_int32),
    ]


class zes_power_ext_properties_t(Structure):
    _fields_ = [
        ("stype", c_int32), ("pNext", c_void_p), ("domain", zes_power_domain_t),
        ("defaultLimit", POINTER(zes_power_limit_ext_desc_t)),
    ]


class zes_power_energy_counter_t(Structure):
    _fields_ = [("energy", c_uint64), ("timestamp", c_uint64)]


@dataclass
class FakeDomain:
    """One power domain: its kind, tile (None: the whole card), power and counter."""

    domain: int = ZES_POWER_DOMAIN_CARD
    tile: int | None = None
    power_w: float = 300.0
    energy_uj: int = 0
    max_limit_mw: int = 600_000  # -1: unknown
    energy_supported: bool = True
    error: int | None = None  # a code zesPowerGetEnergyCounter returns now


@dataclass
class FakeCard:
    model: str = "Intel(R) Data Center GPU Max 1550"
    serial: str = "LQAC12345678"
    tiles: int = 0  # numSubdevices (0: no sub-devices)
    domains: list[FakeDomain] = field(default_factory=list)
    ext_properties: bool = True  # False: an older driver ignores the pNext chain
    device_type: int = ZE_DEVICE_TYPE_GPU


def max_1550(power_w: float = 600.0) -> FakeCard:
    """A two-tile card: card and package domains, and one package domain per tile."""
    return FakeCard(tiles=2, domains=[
        FakeDomain(ZES_POWER_DOMAIN_CARD, None, power_w),
        FakeDomain(ZES_POWER_DOMAIN_PACKAGE, None, power_w * 0.9),
        FakeDomain(ZES_POWER_DOMAIN_PACKAGE, 0, power_w * 0.5, max_limit_mw=-1),
        FakeDomain(ZES_POWER_DOMAIN_PACKAGE, 1, power_w * 0.4, max_limit_mw=-1),
    ])


def arc_a770(power_w: float = 150.0) -> FakeCard:
    """A single-tile card with a package domain only."""
    return FakeCard("Intel(R) Arc(TM) A770 Graphics", "", 0, [
        FakeDomain(ZES_POWER_DOMAIN_PACKAGE, None, power_w, max_limit_mw=225_000)])


def _obj(pointer: object) -> object:
    """What a ``byref(...)`` points at (the real library writes through it)."""
    return getattr(pointer, "_obj", pointer)


class FakePyzes(types.ModuleType):
    """The fake module. ``init_result`` is what ``zesInit`` returns."""

    def __init__(self, cards: list[FakeCard], init_result: int = ZE_RESULT_SUCCESS) -> None:
        super().__init__("pyzes")
        self.cards = cards
        self.init_result = init_result
        self.initialised = False
        self.time_us = 1_000_000_000
        self.calls: list[str] = []
        for name, value in list(globals().items()):
            if name.startswith(("ZE_", "ZES_", "ze_", "zes_")):
                setattr(self, name, value)

    # -- test controls -------------------------------------------------------------
    def advance(self, dt_s: float) -> None:
        """Every domain gains power × dt (whole µJ, wrapping at 2**64); time moves on."""
        self.time_us += round(dt_s * 1e6)
        for card in self.cards:
            for d in card.domains:
                d.energy_uj = (d.energy_uj + round(d.power_w * dt_s * 1e6)) % COUNTER_MODULUS

    def _enter(self, call: str) -> int:
        self.calls.append(call)
        return ZE_RESULT_SUCCESS if self.initialised else ZE_RESULT_ERROR_UNINITIALIZED

    def _domain(self, handle: object) -> FakeDomain | None:
        value = getattr(handle, "value", None) or 0
        card, index = divmod(value - 0x3000, 0x100)
        if value < 0x3000 or card >= len(self.cards) or index >= len(self.cards[card].domains):
            return None
        return self.cards[card].domains[index]

    @staticmethod
    def _fill(p_count: object, array: object, values: list[int], kind: type) -> int:
        count = _obj(p_count)
        if array is None:
            count.value = len(values)  # type: ignore[attr-defined]
            return ZE_RESULT_SUCCESS
        n = min(count.value, len(values))  # type: ignore[attr-defined]
        for i in range(n):
            array[i] = kind(values[i])  # type: ignore[index]
        count.value = n  # type: ignore[attr-defined]
        return ZE_RESULT_SUCCESS

    # -- pyzes API -----------------------------------------------------------------
    def zesInit(self, flags: int) -> int:
        self.calls.append("zesInit")
        if self.init_result == ZE_RESULT_SUCCESS:
            self.initialised = True
        return self.init_result

    def zesDriverGet(self, pCount: object, phDrivers: object) -> int:
        rc = self._enter("zesDriverGet")
        return rc or self._fill(pCount, phDrivers, [0x1000] if self.cards else [],
                                zes_driver_handle_t)

    def zesDeviceGet(self, hDriver: object, pCount: object, phDevices: object) -> int:
        rc = self._enter("zesDeviceGet")
        if rc:
            return rc
        if getattr(hDriver, "value", None) != 0x1000:
            return ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        return self._fill(pCount, phDevices, [0x2000 + i for i in range(len(self.cards))],
                          zes_device_handle_t)

    def _card(self, handle: object) -> FakeCard | None:
        index = (getattr(handle, "value", None) or 0) - 0x2000
        return self.cards[index] if 0 <= index < len(self.cards) else None

    def zesDeviceGetProperties(self, hDevice: object, pProperties: object) -> int:
        rc = self._enter("zesDeviceGetProperties")
        card = self._card(hDevice)
        if rc or card is None:
            return rc or ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        props = _obj(pProperties)
        assert isinstance(props, zes_device_properties_t), "pass byref(zes_device_properties_t)"
        props.core.type = card.device_type
        props.core.name = card.model.encode()
        props.core.uuid.id[:] = list(range(self.cards.index(card) * 16,
                                           self.cards.index(card) * 16 + 16))
        props.numSubdevices = card.tiles
        props.serialNumber = card.serial.encode()
        props.modelName = card.model.encode()
        props.vendorName = b"Intel(R) Corporation"
        return ZE_RESULT_SUCCESS

    def zesDeviceEnumPowerDomains(self, hDevice: object, pCount: object, phPower: object) -> int:
        rc = self._enter("zesDeviceEnumPowerDomains")
        card = self._card(hDevice)
        if rc or card is None:
            return rc or ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        base = 0x3000 + self.cards.index(card) * 0x100
        return self._fill(pCount, phPower, [base + i for i in range(len(card.domains))],
                          zes_pwr_handle_t)

    def zesPowerGetProperties(self, hPower: object, pProperties: object) -> int:
        rc = self._enter("zesPowerGetProperties")
        d = self._domain(hPower)
        if rc or d is None:
            return rc or ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        props = _obj(pProperties)
        assert isinstance(props, zes_power_properties_t), "pass byref(zes_power_properties_t)"
        props.onSubdevice = d.tile is not None
        props.subdeviceId = d.tile or 0
        props.defaultLimit = d.max_limit_mw
        props.minLimit = -1
        props.maxLimit = d.max_limit_mw
        card = next(c for c in self.cards if d in c.domains)
        if props.pNext and card.ext_properties:  # follow the chain by stype
            stype = ctypes.cast(props.pNext, POINTER(c_int32)).contents.value
            if stype == ZES_STRUCTURE_TYPE_POWER_EXT_PROPERTIES:
                ctypes.cast(props.pNext, POINTER(zes_power_ext_properties_t)).contents.domain = (
                    d.domain)
        return ZE_RESULT_SUCCESS

    def zesPowerGetEnergyCounter(self, hPower: object, pEnergy: object) -> int:
        rc = self._enter("zesPowerGetEnergyCounter")
        d = self._domain(hPower)
        if rc or d is None:
            return rc or ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        if not d.energy_supported:
            return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE
        if d.error is not None:
            return d.error
        energy = _obj(pEnergy)
        assert isinstance(energy, zes_power_energy_counter_t), "pass byref(...energy_counter_t)"
        energy.energy = d.energy_uj
        energy.timestamp = self.time_us
        return ZE_RESULT_SUCCESS
