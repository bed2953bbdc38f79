"""Carbon: grid intensity data, the neural-network carbon calculators, SCI and IF export.

Pure numpy; xarray is imported only when a DataArray or Dataset is passed.

>>> from energykernel.carbon import nn_et, nn_c
>>> kwh = nn_et(hardware_count=10_000, hardware_power_w=330, server_count=0,
...             server_power_w=0, hours=355.2, pue=1.10)
>>> round(kwh / 1000)  # MWh, GPT-3 (Patterson et al. 2021)
1289
"""

from energykernel.carbon._args import ResultNotFinite, check_number, check_parameter
from energykernel.carbon.calculators import (
    J_PER_KWH,
    NNBreakdown,
    emissions,
    nn_c,
    nn_emb,
    nn_eq,
    nn_et,
    nn_total,
)
from energykernel.carbon.dataset import carbon_dataset
from energykernel.carbon.embodied import (
    BLOOM_LIFESPAN_H,
    BLOOM_USE_RATE,
    EMBODIED_DEFAULTS,
    HOURS_PER_YEAR,
    EmbodiedDefault,
    embodied_amortised,
    sci,
)
from energykernel.carbon.impact import to_if_manifest
from energykernel.carbon.intensity import (
    IntensityInfo,
    UnknownRegionError,
    intensity,
    intensity_info,
    region_choices,
    regions,
)

__all__ = [
    "BLOOM_LIFESPAN_H",
    "BLOOM_USE_RATE",
    "EMBODIED_DEFAULTS",
    "HOURS_PER_YEAR",
    "J_PER_KWH",
    "EmbodiedDefault",
    "IntensityInfo",
    "NNBreakdown",
    "ResultNotFinite",
    "UnknownRegionError",
    "carbon_dataset",
    "check_number",
    "check_parameter",
    "embodied_amortised",
    "emissions",
    "intensity",
    "intensity_info",
    "nn_c",
    "nn_emb",
    "nn_eq",
    "nn_et",
    "nn_total",
    "region_choices",
    "regions",
    "sci",
    "to_if_manifest",
]
