"""Synchronized multi-view texturing (SyncMVD-style): N views denoised together through one texture.

``wire`` reads the correspondence part, ``fusion`` scatters/gathers views through texture space,
``step`` is the denoise-loop hook (the UNet loop's and the flow loop's), ``flow`` the flow transformers'
views and ``stage`` the ``texture_sync`` stage (docs/projection.md,
"Synchronized multi-view texturing").
"""
