"""energykernel."""
