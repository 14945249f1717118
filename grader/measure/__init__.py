"""Measurement services the tests call: launches, device work, timing, memory, dynamo counters.

They return small dataclasses and know nothing about the rubric.
"""
