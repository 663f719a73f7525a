"""herd's allocator: htools-compatible cluster model, score, rules and placement.

See API.md in this directory.  Modules: model, score, rules, moves, text,
iallocator, config_model, allocate.
"""
