"""Live capture for `dgcap watch`: dumpcap -> pcapng pipe -> the same pipeline as `dgcap report`.

    capture.py    LiveCapture: runs dumpcap, reads its pcapng stream (capture/stream.py) in a
                  thread, tees it to a RingWriter, feeds CaptureAnalyzer from the caller's thread
    ring.py       RingWriter: the raw capture for the ticket, one file or a size-capped ring
    state.py      LiveState: per-session live counters from the pipeline hooks -> SessionView rows
    dashboard.py  the rich renderable drawn a few times a second
"""
