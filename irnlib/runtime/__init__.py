"""The bottom layer: where files live (data, results, cache roots; atomic writes),
the CPU runtime (threads, allocator), devices and provenance records.

Imports nothing else from irnlib.
"""
