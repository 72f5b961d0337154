"""Pilot tests drive FleetApp on a FixedFleet (the real core on a fake runner with a frozen clock)."""
