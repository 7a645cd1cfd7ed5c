"""Tests of the external processor kit, its example family and the Sawtooth SDK shim."""
