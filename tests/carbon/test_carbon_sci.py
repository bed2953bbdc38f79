"""SCI and embodied amortisation, and the cited defaults table."""

from __future__ import annotations

import numpy as np
import pytest

from energykernel.carbon import EMBODIED_DEFAULTS, HOURS_PER_YEAR, embodied_amortised, sci


def test_sci_formula():
    assert sci(10.0, 400.0, 1000.0, 100) == pytest.approx((10 * 400 + 1000) / 100)
    assert sci(1.0, "FR", 0.0, 1) > 0


def test_sci_elementwise_arrays():
    out = sci(np.array([1.0, 2.0]), 100.0, 0.0, np.array([1.0, 4.0]))
    np.testing.assert_allclose(out, [100.0, 50.0])


def test_sci_rejects_zero_functional_units():
    with pytest.raises(ValueError, match="functional_units"):
        sci(1.0, 1.0, 1.0, 0)


def test_amortisation_formula():
    m = embodied_amortised(total_embodied_g=1_000_000, time_reserved_h=24,
                           expected_lifespan_h=4 * HOURS_PER_YEAR, resources_reserved=2,
                           total_resources=8)
    assert m == pytest.approx(1e6 * 24 / (4 * 8760) * 2 / 8)


def test_amortisation_bad_inputs():
    with pytest.raises(ValueError, match="expected_lifespan_h"):
        embodied_amortised(total_embodied_g=1, time_reserved_h=1, expected_lifespan_h=0)
    with pytest.raises(ValueError, match="resources_reserved"):
        embodied_amortised(total_embodied_g=1, time_reserved_h=1, expected_lifespan_h=1,
                           resources_reserved=3, total_resources=2)
    with pytest.raises(ValueError, match="total_embodied_g"):
        embodied_amortised(total_embodied_g=-1, time_reserved_h=1, expected_lifespan_h=1)


def test_defaults_are_cited():
    assert EMBODIED_DEFAULTS
    for key, row in EMBODIED_DEFAULTS.items():
        assert row.value_g > 0, key
        assert row.source and row.unit and row.description, key
    assert EMBODIED_DEFAULTS["nvidia-a100"].value_g == 150_000.0
