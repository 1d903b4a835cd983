"""The CPU's faster variants of the reference ops: cache-sized blocks, shared among threads.

    machine.py      what the machine offers: cores, cache sizes (block sizes follow them)
    threads.py      run_blocks: blocks of work on every core; add_in_order
    chunked.py      an elementwise kernel over cache-sized chunks (chunked_map)
    normal_cdf.py   Phi(x) in float32 without SciPy's slow erf
    gelu.py         GELU in chunks, its slope made with y for the backward (GELUChunked)
    rowwise.py      BatchNorm's passes over blocks of channels-last rows (BatchNormCPU)
    depthwise.py    depthwise conv by cache-sized tiles (DepthwiseBlocked)
    tuning.py       process settings: OpenBLAS's idle threads, freed memory kept for reuse
"""
