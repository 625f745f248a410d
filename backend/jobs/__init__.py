"""Jobs: the FIFO queue on the one worker thread (``queue``), job events (``events``), cancel, and
writing results (``outputs``, ``atomic``). Import the submodules: ``atomic`` and ``outputs`` stay free
of torch so the remote CLI starts fast."""
