"""trackpipe's Beam composites, one module per step of the pipeline: read, dedupe, write,
package, publish (and stats, the counts every step emits).

Each composite is a thin adapter: the rules it applies are plain Python in trackpipe.events,
the files it touches go through trackpipe.storage. Nothing here is imported by the rules or the
storage layer (tests/test_layout.py checks the layers; docs/architecture.md draws them).
"""
